# The bot admins' panel. Messages are HTML; *-button labels and answers are plain text.

admin-title = 🛠 <b>Admin panel</b>
admin-stats =
    Users: <b>{ $users }</b> (reachable { $reachable }) · active numbers: <b>{ $active }</b>
    <b>Today</b>: { $today_count } sold · revenue { $today_revenue } · cost { $today_cost } · margin <b>{ $today_margin }</b>
    <b>30 days</b>: { $month_count } sold · revenue { $month_revenue } · cost { $month_cost } · margin <b>{ $month_margin }</b>
    Balances held for users and groups: { $held }
admin-upstream = DaisySim balance: <b>{ $balance }</b>
admin-upstream-unavailable = DaisySim balance: unavailable right now.
admin-upstream-low = ⚠️ Under the alert threshold of { $threshold }: top up the DaisySim account.

admin-stats-button = 📊 Refresh
admin-find-button = 🔎 Find a user
admin-broadcast-button = 📣 Broadcast
admin-markup-button = 💲 Markup
admin-export-button = 📄 Ledger CSV
admin-home-button = « Admin panel
admin-back-button = « Back
admin-done = Done.

admin-find-prompt = Send a user id or @username.
admin-user-usage = Usage: <code>/user 123456789</code> or <code>/user @username</code>
admin-user-unknown = No user “{ $ref }” is known to the bot. They must have started it first.
admin-user-no-wallet = User { $id } has no wallet yet: they must start the bot first.
admin-user-card =
    👤 <b>{ $name }</b> · { $username } · id <code>{ $id }</code>
    Language: { $language } · joined { $joined }
    Balance: <b>{ $balance }</b> · purchases: { $purchases } · Stars payments: { $payments }
    Status: { $status }
admin-user-active = active
admin-user-banned = 🚫 banned
admin-user-inactive = blocked the bot
admin-topup-button = 💰 Top up
admin-ban-button = 🚫 Ban
admin-unban-button = ✅ Unban
admin-payments-button = ⭐ Stars payments

admin-ban-usage = Usage: <code>/ban 123456789</code>, <code>/unban @username</code>
admin-ban-admin = Admins cannot be banned.
admin-banned = 🚫 Banned. They get one polite line and nothing else.
admin-already-banned = Already banned.
admin-unbanned = ✅ Unbanned.
admin-already-unbanned = Not banned.

admin-topup-usage =
    Usage: <code>/topup &lt;user id or @username&gt; &lt;amount in USD&gt;</code>
    For example: <code>/topup @alice 5</code> or <code>/topup 123456789 12.50</code>
admin-amount-format = “{ $text }” is not an amount. Send a number of US dollars, e.g. 5 or 12.50.
admin-amount-not_positive = The amount must be more than zero (got “{ $text }”). Nothing was changed.
admin-amount-decimals = At most 4 decimals, please (got “{ $text }”). Nothing was changed.
admin-amount-too_large = At most { $max } at a time (got “{ $text }”). Nothing was changed.
admin-topup-choose = Top up <b>{ $name }</b> (id <code>{ $id }</code>) by:
admin-topup-other-button = ✏️ Another amount
admin-topup-prompt = Send the amount in USD, e.g. 7.50.
admin-topup-confirm = Top up <b>{ $name }</b> (id <code>{ $id }</code>) by <b>{ $amount }</b>?
admin-confirm-button = ✅ Top up { $amount }
admin-topup-duplicate = This top-up was already done; nothing more was added.
admin-topup-done = ✅ { $name } topped up by <b>{ $amount }</b>. Their balance: <b>{ $balance }</b>. They have been told.

admin-payments-title = ⭐ <b>Stars payments of user { $id }</b>
admin-payments-none = No Stars payments.
admin-payment-line = #{ $id } · { $date } · { $stars } ⭐ · { $amount } · { $status }
admin-payment-paid = paid
admin-payment-refunded = refunded
admin-payment-unknown = No such payment.
admin-refund-button = ↩️ Refund #{ $id } ({ $stars } ⭐)
admin-refund-usage = Usage: <code>/refund &lt;payment number or Telegram charge id&gt;</code>
admin-refund-confirm =
    Refund payment #{ $id }: <b>{ $stars } ⭐</b> go back to user { $user } and <b>{ $amount }</b> is taken off the wallet it paid into.
admin-refund-ok-button = ↩️ Refund
admin-refund-no-funds = Cannot refund: the wallet holds { $balance } and the refund needs { $amount }. Nothing was changed.
admin-refund-refused = Telegram refused the refund ({ $reason }). Nothing was changed.
admin-refund-pending = Telegram did not answer. The balance is already reduced; press Refund again to finish.
admin-refund-already = Payment #{ $id } was already refunded.
admin-refund-done = ↩️ Payment #{ $id } refunded: { $stars } ⭐ back to the payer, { $amount } taken off. Wallet balance: <b>{ $balance }</b>.

admin-broadcast-prompt = Send the message to broadcast. Formatting is kept; you will see a preview first.
admin-broadcast-too-long = That message is empty or too long for a broadcast (4000 characters at most).
admin-broadcast-preview = 📣 Preview. It will go to <b>{ $count }</b> users (not banned, not blocking the bot):
admin-broadcast-send-button = ✅ Send to { $count } users
admin-broadcast-cancel-button = ✖️ Cancel
admin-broadcast-bad = Telegram cannot show this message ({ $reason }). It was not sent.
admin-broadcast-gone = This broadcast no longer exists.
admin-broadcast-already = This broadcast was already sent or cancelled.
admin-broadcast-cancelled = Cancelled.
admin-broadcast-queued = 📣 Queued for { $count } users; it goes out at the pace Telegram allows.

admin-markup-text =
    💲 <b>Markup</b>: { $percent }% + { $fixed } ({ $source })
    A $1.00 number costs users <b>{ $example }</b>.

    To change it, send the percent and optionally a fixed USD amount, e.g. <code>15</code> or <code>15 0.05</code>.
admin-markup-stored = set here
admin-markup-env = from the environment
admin-markup-reset-button = ↩️ Back to the environment's
admin-markup-bad = “{ $text }” is not a markup. Send e.g. <code>15</code> or <code>15 0.05</code> (percent 0–1000, fixed up to $100).
admin-markup-saved = ✅ Saved. Prices use it from now on.

admin-export-started = Preparing the CSV…
admin-export-caption = Ledger: { $entries } entries, sum { $total }. Amounts are in 1/10 000 USD (<code>amount_units</code>) and in USD.
admin-export-failed = The CSV could not be sent. Please try again.
admin-export-usage = Usage: <code>/export</code> (everything) or <code>/export 30</code> (the last 30 days).

admin-alert-low-balance =
    ⚠️ <b>DaisySim balance is low</b>: { $balance } (alert threshold { $threshold }).
    Top up the DaisySim account, or purchases will start to fail.
admin-alert-exhausted =
    ⚠️ <b>DaisySim refused a purchase: INSUFFICIENT_BALANCE.</b>
    The user was refunded. Top up the DaisySim account.
admin-alert-backup =
    ⚠️ <b>The daily backup failed</b>: { $reason }
    Check the folder <code>BACKUP_DIR</code> and the disk; the bot keeps running.
admin-alert-crypto =
    ⚠️ Crypto Pay reports invoice <code>{ $invoice }</code> paid, but it was not credited: { $reason }.
    Check it in @CryptoBot (Crypto Pay → your app → Invoices) and credit the user by hand if the money is there.
admin-alert-payment =
    ⚠️ A Stars payment could not be credited: charge <code>{ $charge }</code> from user { $user }, { $stars } ⭐ ({ $reason }).
    Refund it with <code>/refund { $charge }</code> or credit the user by hand.

# The admins' own command menu (setMyCommands for their chat).
cmd-admin = Admin panel
cmd-user = Find a user: /user id or @username
cmd-topup = Credit a user: /topup user amount
cmd-refund = Refund a Stars payment
cmd-ban = Ban a user
cmd-unban = Unban a user
cmd-markup = Show or set the markup
cmd-stats = Sales and balances
cmd-export = Ledger as CSV
cmd-broadcast = Message every user
cmd-promo = Promo codes: create, batch, uses
