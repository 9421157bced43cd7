# Topping up with Telegram Stars. Messages are HTML; *-button labels, invoice texts and
# pre-checkout errors are plain text.

topup-button = ⭐ Top up
topup-text =
    <b>Top up with Telegram Stars</b>
    Choose an amount. 1 USD of balance costs { $rate } ⭐.
topup-amount-button = { $price } — { $stars } ⭐
topup-invoice-title = Balance top-up { $price }
topup-invoice-description = { $price } on your balance for buying numbers. Paid with Telegram Stars.
topup-invoice-label = { $price } of balance
topup-buy-invoice-title = Top up { $price } and buy
topup-buy-invoice-description = { $price } on your balance; the number you chose is bought as soon as the payment arrives. Paid with Telegram Stars.
group-invoice-title = Group wallet top-up { $price }
group-invoice-description = { $price } on this group's wallet for buying numbers. Paid with Telegram Stars.

topup-paid = ✅ Payment received: <b>+{ $amount }</b> ({ $stars } ⭐). Balance: <b>{ $balance }</b>.
group-paid = ✅ { $name } added <b>{ $amount }</b> to the group wallet ({ $stars } ⭐). Group balance: <b>{ $balance }</b>.
topup-not-credited =
    We received your payment but could not match it to an invoice. An admin has been told and will sort it out.
    If you have questions, use /paysupport.
topup-admin-notice = 💰 An admin topped up your balance by <b>{ $amount }</b>. Balance: <b>{ $balance }</b>.
topup-refunded = ↩️ A Stars payment was refunded: { $stars } ⭐ are back with the payer and { $amount } was taken off the balance. Balance: <b>{ $balance }</b>.

precheckout-invalid = This invoice is not valid any more. Please request a new one.
precheckout-currency = This invoice can only be paid in Telegram Stars.
precheckout-amount = The amount does not match the invoice. Please request a new one.
precheckout-wallet = The wallet of this invoice no longer exists. Please request a new one.
precheckout-banned = This account cannot use the bot.

paysupport-text =
    <b>Payment support</b>
    Balance bought with Telegram Stars is credited as soon as Telegram confirms the payment.
    If a payment did not show up on your balance, or you want it refunded, write to { $contact } with the date and the amount; unused balance from a Stars payment can be refunded in Stars.
terms-text =
    <b>Terms</b>
    • Balance is bought with Telegram Stars at { $rate } ⭐ per 1 USD and is used only to buy numbers in this bot.
    • A number that gets no code is refunded in full to your balance; a number that got its code is not refunded.
    • Unused balance from a Stars payment can be refunded in Stars on request (/paysupport).
    • Numbers are for receiving verification codes; do not use them for anything unlawful.

cmd-settings = Settings
cmd-paysupport = Help with payments
cmd-terms = Terms of payment

# The balance screen shows a purchase refused before any money reached the provider (out of
# stock, ...) as one line: the ledger keeps its hold and its refund, which cancel out.
balance-entry-not-bought = { $date } · <b>{ $amount }</b> · { $service } not bought — nothing charged
balance-netted-note = A purchase that did not go through is shown once: the money held for it came straight back.
