# Карточка номера, сообщение с кодом и «Мои номера». Сообщения — HTML; *-button — обычный текст.

card-text =
    📱 <b>{ $service }</b>
    Номер: <code>{ $phone }</code>
    Цена: { $price }
    Статус: { $status }
    ⏱ { $elapsed }
card-text-code =
    📱 <b>{ $service }</b>
    Номер: <code>{ $phone }</code>
    Цена: { $price }
    Статус: { $status }
    Код: <b><code>{ $code }</code></b>
    ⏱ { $elapsed }
card-paid-by-group = 👥 Оплачено из кошелька группы
card-hint-waiting = Введите номер на сайте сервиса; код появится здесь сам.
card-hint-confirming = Провайдер ещё не подтвердил покупку: номер появится здесь сам, или деньги вернутся полностью. 🔄 Обновить покажет, как дела.
card-no-number = ещё не выдан
card-status-purchasing = ⏳ покупаем…
card-status-unknown = ⏳ подтверждаем покупку у поставщика…
card-status-waiting = ⏳ ждём СМС
card-status-completed = ✅ код получен
card-status-cancelled = ↩️ отменён — { $price } возвращено
card-status-expired = ⌛ код не пришёл — { $price } возвращено
card-status-failed = ✖️ не куплен — { $price } возвращено
card-copy-number-button = 📋 Копировать номер
card-copy-code-button = 📋 Копировать код
card-refresh-button = 🔄 Обновить
card-cancel-locked-button = ⏳ Отмена через { $time }
card-cancel-button = ✖️ Отменить и вернуть деньги
card-buy-again-button = 🔁 Купить ещё — { $price }
card-buy-again-group-button = 🔁 Купить ещё — { $price } (кошелёк группы)

card-refreshed = СМС пока нет — ждём.
card-code-arrived = Код пришёл!
card-cancel-wait = Отменить можно через { $time }.
card-cancelled = Отменено: { $price } вернулось на баланс.
card-cancel-code = Отменить уже нельзя: код пришёл.
card-cancelling = Отменяем…
card-finished = С этим номером всё завершено.
card-not-yours = Эта кнопка не для вас.
card-not-found = Этот номер больше недоступен.
card-busy = Поставщик занят; попробуйте через { $seconds } с.

code-text =
    🔑 <b><code>{ $code }</code></b>
    Код { $service } для <code>{ $phone }</code>

numbers-text = <b>Мои номера</b>
numbers-active = <b>Активные</b>
numbers-history = <b>История</b>
numbers-empty = Здесь пока пусто.
numbers-line = { $service } · <code>{ $phone }</code> · { $status } · { $price } · { $date }
numbers-line-code = { $service } · <code>{ $phone }</code> · код <code>{ $code }</code> · { $price } · { $date }
numbers-open-button = 📱 { $service } { $phone }
numbers-filter-all = Все
numbers-filter-active = Активные
numbers-filter-completed = С кодом
numbers-filter-refunded = Возвраты
numbers-status-purchasing = покупается
numbers-status-unknown = подтверждается
numbers-status-waiting = ждёт СМС
numbers-status-completed = код получен
numbers-status-cancelled = отменён, возврат
numbers-status-expired = истёк, возврат
numbers-status-failed = не куплен, возврат
