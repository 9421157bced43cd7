## Maintenance mode: what users are told while new purchases and top-ups are paused, and the
## admins' switch in the panel.

maintenance-paused =
    🛠 <b>Short maintenance break.</b> New purchases and top-ups are paused for now.
    Your balance and your numbers are safe: codes still arrive, and cancels and refunds work as usual.
maintenance-back-in = Back in about { $minutes } min.
maintenance-back-soon = We'll be back as soon as we can.
maintenance-precheckout-in = Payments are paused for a short maintenance break, and nothing was charged. Please try again in about { $minutes } min.
maintenance-precheckout-soon = Payments are paused for a short maintenance break, and nothing was charged. Please try again a little later.

admin-maintenance-button = 🛠 Maintenance
admin-maintenance-off = 🛠 <b>Maintenance mode: off.</b> Purchases and top-ups are open.
admin-maintenance-on-until =
    🛠 <b>Maintenance mode: on</b> until { $until } UTC (about { $minutes } min left), then it ends by itself.
    New purchases and top-ups are paused; codes, cancels, refunds, balances and history keep working.
admin-maintenance-on-manual =
    🛠 <b>Maintenance mode: on</b> until you turn it off.
    New purchases and top-ups are paused; codes, cancels, refunds, balances and history keep working.
admin-maintenance-forced = 🔒 Forced on by <code>MAINTENANCE=1</code> in the settings: the panel cannot turn it off. Unset it and restart the bot.
admin-maintenance-pick = Pause sales for how long? Users see the estimate.
admin-maintenance-minutes-button = { $minutes } min
admin-maintenance-manual-button = Until I turn it off
admin-maintenance-off-button = ✅ Turn it off
admin-maintenance-saved = Saved.
