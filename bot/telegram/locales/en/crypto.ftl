# Crypto Pay (@CryptoBot) top-ups. Messages are HTML; *-button labels and the invoice
# description are plain text.

topup-crypto-line = 💎 Or pay in crypto (USDT, TON, BTC …) through Crypto Pay: tap 💎 Crypto.
crypto-button = 💎 Crypto
crypto-text =
    💎 <b>Top up with crypto</b> (Crypto Pay, @CryptoBot)
    Pick an amount, or send one in US dollars (e.g. 7.50). You pay in { $assets } at the current rate; your balance gets exactly the amount in USD.
crypto-amount-button = { $price }
crypto-invoice-description = { $price } on your balance for buying numbers
crypto-invoice-text =
    💎 Invoice for <b>{ $price }</b>
    Pay in { $assets } through Crypto Pay within { $minutes } min. Your balance is credited as soon as the payment is seen, and you get a receipt here.
crypto-pay-link = Pay here: { $url }
crypto-pay-button = Pay { $price }
crypto-paid = ✅ Payment received: <b>{ $amount }</b> via Crypto Pay ({ $asset }). Balance: <b>{ $balance }</b>.
crypto-paid-group = ✅ Payment received: <b>{ $amount }</b> via Crypto Pay ({ $asset }) for the group wallet. Group balance: <b>{ $balance }</b>.
crypto-invoice-paid = ✅ Invoice for { $price } paid.
crypto-expired = ⌛ The invoice for { $price } expired unpaid; nothing was charged. You can make a new one any time.
crypto-again-button = 💎 New invoice
crypto-unavailable = 😕 Crypto Pay is not answering right now, so no invoice was made and nothing was charged. Please try again in a minute.
crypto-off = Crypto payments are switched off at the moment. ⭐ Telegram Stars still work.
crypto-amount-format = “{ $text }” is not an amount. Send a number of US dollars, e.g. 5 or 7.50.
crypto-amount-not_positive = The amount must be more than zero.
crypto-amount-decimals = Whole cents, please (e.g. 7.50).
crypto-amount-too_large = At most { $max } per invoice, please.
crypto-amount-too_small = At least { $min } per invoice, please.

# Funding a group wallet with Crypto Pay (the group's ⭐ screen → 💎 Crypto).
group-crypto-text = 💎 Choose an amount; anyone in the group can pay the Crypto Pay invoice in { $assets }, and it funds the group wallet:
group-crypto-description = { $price } for this group's wallet for buying numbers
