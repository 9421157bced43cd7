# Main menu, commands, help, language, balance.
# Messages are HTML (parse_mode=HTML); button labels (*-button, menu-*) are plain text.

sandbox-badge = 🧪 <b>SANDBOX</b> — play money; codes arrive on their own after a short wait.
menu-text =
    <b>Virtual US numbers for SMS codes</b>
    Pick a service, get a number, receive the code here.

    Balance: <b>{ $balance }</b>
menu-buy = 🛒 Buy a number
menu-numbers = 📱 My numbers
menu-balance = 💰 Balance
menu-help = ❓ Help
menu-language = 🌐 Language
menu-back = « Menu

cmd-start = Main menu
cmd-buy = Buy a number
cmd-numbers = My numbers
cmd-balance = Balance and operations
cmd-help = How it works

help-text =
    <b>How it works</b>
    1. Tap <b>Buy a number</b> and choose a service. The price is on the button; one tap buys.
    2. Enter the number on the service's site or app. The code appears here as soon as it comes.
    3. No code? After { $lock } you can cancel and the full price goes back to your balance.
       If no code comes within { $timeout }, the number is cancelled and refunded by itself.

    Type part of a service's name at any time to find it.
    Questions or a payment problem? Write to { $contact } (payments: /paysupport).

language-text = Choose your language:
language-set = Language: English
language-en = English
language-ru = Русский

balance-text = <b>Balance: { $balance }</b>
balance-recent = Recent operations:
balance-empty = No operations yet.
balance-entry = { $date } · <b>{ $amount }</b> · { $kind }
balance-topup-admin = Top up with ⭐ Telegram Stars (the ⭐ Top up button); for anything else write to { $contact }.
balance-topup-sandbox = This is the sandbox: the balance is play money. Top it up with ⭐ Telegram Stars (the ⭐ Top up button).
support-fallback = an admin of this bot
help-admin = <b>For admins</b>: /admin opens the admin panel (users, top-ups, refunds, markup, broadcasts, stats); /topup <code>user amount</code> credits a user.
balance-refresh = 🔄 Refresh

ledger-kind-topup = top-up
ledger-kind-stars = Telegram Stars payment
ledger-kind-purchase = number purchase
ledger-kind-refund = refund
ledger-kind-transfer_in = transfer in
ledger-kind-transfer_out = transfer out
ledger-kind-adjustment = adjustment
ledger-kind-sandbox_bonus = sandbox play money
ledger-kind-crypto = Crypto Pay payment
ledger-kind-other = operation

banned = Sorry, this account cannot use the bot. If you think this is a mistake, contact an admin.
stale-button = This button is out of date. Here is a fresh menu.
stale-answer = This button is out of date.
error-generic =
    Something went wrong on our side (reference { $ref }). Your money is safe.
    Please try again; if it keeps happening, send this reference to an admin.
error-upstream =
    The number provider is not answering right now. Your money is safe.
    Please try again in a minute.
error-busy = The provider is busy. Please try again in { $seconds } s.
