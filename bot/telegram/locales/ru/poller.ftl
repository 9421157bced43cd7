# Сообщения, которые бот присылает сам, когда поллер завершает номер. HTML.

poller-expired-refund =
    ⌛ Код для <b>{ $service }</b> <code>{ $phone }</code> не пришёл за { $waited }.
    Номер отменён, <b>{ $price }</b> возвращено на баланс.
poller-gone-refund =
    ↩️ Поставщик закрыл номер <b>{ $service }</b> <code>{ $phone }</code> до прихода кода.
    <b>{ $price }</b> возвращено на баланс.
