# Messages the bot sends on its own when the poller settles a number. HTML.

poller-expired-refund =
    ⌛ No code came for <b>{ $service }</b> <code>{ $phone }</code> within { $waited }.
    The number was cancelled and <b>{ $price }</b> is back on your balance.
poller-gone-refund =
    ↩️ The provider closed <b>{ $service }</b> <code>{ $phone }</code> before a code came.
    <b>{ $price }</b> is back on your balance.
