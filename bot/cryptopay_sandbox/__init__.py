"""A faithful local Crypto Pay (@CryptoBot's payment API) beside the DaisySim sandbox: the
methods the bot uses (getMe, createInvoice, getInvoices), invoice statuses active/paid/expired
on a scaled clock, webhooks signed as the reference says and retried until answered 200, a
control API and a pay page that plays the payer. Tests, the demo and sandbox mode use it::

    async with CryptoPaySandbox(time_scale=60) as cp:
        await cp.control.set_webhook("http://127.0.0.1:9100/cryptopay/webhook")
        await cp.control.pay(invoice_id, asset="TON")

Control API (`/_control`, no auth):

    POST /_control/reset                       everything back to a fresh start
    GET|POST /_control/webhook                 read / {url} set the app's webhook URL
    GET  /_control/invoices[/ID]               invoices as the API shows them
    POST /_control/invoices/ID/pay             {asset?} the payer pays (webhook sent)
    POST /_control/invoices/ID/expire          the invoice expires now
    POST /_control/invoices/ID/webhook         {times?} its paid update sent again
    GET  /_control/webhooks                    every delivery attempt and its HTTP status
    POST /_control/clock                       {advance: seconds} move the clock on
"""

from bot.cryptopay_sandbox.control import CryptoPayControl, CryptoPayControlError
from bot.cryptopay_sandbox.server import DEFAULT_TOKEN, CryptoPaySandbox

__all__ = ["DEFAULT_TOKEN", "CryptoPayControl", "CryptoPayControlError", "CryptoPaySandbox"]
