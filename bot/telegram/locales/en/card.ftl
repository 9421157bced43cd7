# The activation card, the code message and My numbers. Messages are HTML; *-button plain text.

card-text =
    📱 <b>{ $service }</b>
    Number: <code>{ $phone }</code>
    Price: { $price }
    Status: { $status }
    ⏱ { $elapsed }
card-text-code =
    📱 <b>{ $service }</b>
    Number: <code>{ $phone }</code>
    Price: { $price }
    Status: { $status }
    Code: <b><code>{ $code }</code></b>
    ⏱ { $elapsed }
card-paid-by-group = 👥 Paid from the group wallet
card-hint-waiting = Enter the number on the service's site; the code appears here by itself.
card-hint-confirming = The provider has not confirmed the purchase yet: the number appears here by itself, or your money comes back in full. 🔄 Refresh shows where it stands.
card-no-number = not assigned yet
card-status-purchasing = ⏳ buying…
card-status-unknown = ⏳ confirming the purchase with the provider…
card-status-waiting = ⏳ waiting for the SMS
card-status-completed = ✅ code received
card-status-cancelled = ↩️ cancelled — { $price } refunded
card-status-expired = ⌛ no code came — { $price } refunded
card-status-failed = ✖️ not bought — { $price } refunded
card-copy-number-button = 📋 Copy number
card-copy-code-button = 📋 Copy code
card-refresh-button = 🔄 Refresh
card-cancel-locked-button = ⏳ Cancel in { $time }
card-cancel-button = ✖️ Cancel and refund
card-buy-again-button = 🔁 Buy again — { $price }
card-buy-again-group-button = 🔁 Buy again — { $price } (group wallet)

card-refreshed = No SMS yet — still waiting.
card-code-arrived = The code has arrived!
card-cancel-wait = You can cancel in { $time }.
card-cancelled = Cancelled: { $price } is back on your balance.
card-cancel-code = Too late to cancel: the code has already arrived.
card-cancelling = Cancelling…
card-finished = This number is finished.
card-not-yours = This button is not yours.
card-not-found = This number is no longer available.
card-busy = The provider is busy; try again in { $seconds } s.

code-text =
    🔑 <b><code>{ $code }</code></b>
    { $service } code for <code>{ $phone }</code>

numbers-text = <b>My numbers</b>
numbers-active = <b>Active</b>
numbers-history = <b>History</b>
numbers-empty = Nothing here yet.
numbers-line = { $service } · <code>{ $phone }</code> · { $status } · { $price } · { $date }
numbers-line-code = { $service } · <code>{ $phone }</code> · code <code>{ $code }</code> · { $price } · { $date }
numbers-open-button = 📱 { $service } { $phone }
numbers-filter-all = All
numbers-filter-active = Active
numbers-filter-completed = With code
numbers-filter-refunded = Refunded
numbers-status-purchasing = buying
numbers-status-unknown = confirming
numbers-status-waiting = waiting
numbers-status-completed = code received
numbers-status-cancelled = cancelled, refunded
numbers-status-expired = expired, refunded
numbers-status-failed = not bought, refunded
