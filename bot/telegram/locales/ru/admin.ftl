# Панель администраторов бота. Сообщения — HTML; подписи *-button и ответы — простой текст.

admin-title = 🛠 <b>Панель администратора</b>
admin-stats =
    Пользователей: <b>{ $users }</b> (доступно { $reachable }) · активных номеров: <b>{ $active }</b>
    <b>Сегодня</b>: продано { $today_count } · выручка { $today_revenue } · себестоимость { $today_cost } · маржа <b>{ $today_margin }</b>
    <b>30 дней</b>: продано { $month_count } · выручка { $month_revenue } · себестоимость { $month_cost } · маржа <b>{ $month_margin }</b>
    На балансах пользователей и групп: { $held }
admin-upstream = Баланс у поставщика номеров: <b>{ $balance }</b>
admin-upstream-unavailable = Баланс у поставщика номеров сейчас недоступен.
admin-upstream-low = ⚠️ Ниже порога оповещения { $threshold }: пополните счёт у поставщика номеров.

admin-stats-button = 📊 Обновить
admin-find-button = 🔎 Найти пользователя
admin-broadcast-button = 📣 Рассылка
admin-markup-button = 💲 Наценка
admin-export-button = 📄 Выгрузить журнал
admin-home-button = « Панель
admin-back-button = « Назад
admin-done = Готово.

admin-find-prompt = Пришлите числовой номер пользователя в Телеграме или его @имя.
admin-user-usage = Как использовать: <code>/user 123456789</code> или <code>/user @username</code>
admin-user-unknown = Пользователь «{ $ref }» боту не знаком. Сначала он должен запустить бота.
admin-user-no-wallet = У пользователя { $id } ещё нет кошелька: сначала он должен запустить бота.
admin-user-card =
    👤 <b>{ $name }</b> · { $username } · № <code>{ $id }</code>
    Язык: { $language } · с { $joined }
    Баланс: <b>{ $balance }</b> · покупок: { $purchases } · оплат звёздами: { $payments }
    Статус: { $status }
admin-user-active = активен
admin-user-banned = 🚫 заблокирован
admin-user-inactive = заблокировал бота
admin-topup-button = 💰 Пополнить
admin-ban-button = 🚫 Заблокировать
admin-unban-button = ✅ Разблокировать
admin-payments-button = ⭐ Оплаты звёздами

admin-ban-usage = Как использовать: <code>/ban 123456789</code>, <code>/unban @username</code>
admin-ban-admin = Администраторов заблокировать нельзя.
admin-banned = 🚫 Заблокирован. Он получит одну вежливую строку и больше ничего.
admin-already-banned = Уже заблокирован.
admin-unbanned = ✅ Разблокирован.
admin-already-unbanned = Не заблокирован.

admin-topup-usage =
    Как использовать: <code>/topup &lt;id или @username&gt; &lt;сумма в долларах&gt;</code>
    Например: <code>/topup @alice 5</code> или <code>/topup 123456789 12.50</code>
admin-amount-format = «{ $text }» — не сумма. Пришлите число долларов, например 5 или 12.50.
admin-amount-not_positive = Сумма должна быть больше нуля (получено «{ $text }»). Ничего не изменено.
admin-amount-decimals = Не больше 4 знаков после точки (получено «{ $text }»). Ничего не изменено.
admin-amount-too_large = Не больше { $max } за раз (получено «{ $text }»). Ничего не изменено.
admin-topup-choose = Пополнить <b>{ $name }</b> (№ <code>{ $id }</code>) на:
admin-topup-other-button = ✏️ Другая сумма
admin-topup-prompt = Пришлите сумму в долларах, например 7.50.
admin-topup-confirm = Пополнить <b>{ $name }</b> (№ <code>{ $id }</code>) на <b>{ $amount }</b>?
admin-confirm-button = ✅ Пополнить на { $amount }
admin-topup-duplicate = Это пополнение уже сделано; больше ничего не добавлено.
admin-topup-done = ✅ { $name }: баланс пополнен на <b>{ $amount }</b>, теперь <b>{ $balance }</b>. Пользователь уведомлён.

admin-payments-title = ⭐ <b>Оплаты звёздами пользователя { $id }</b>
admin-payments-none = Оплат звёздами нет.
admin-payment-line = №{ $id } · { $date } · { $stars } ⭐ · { $amount } · { $status }
admin-payment-paid = оплачено
admin-payment-refunded = возвращено
admin-payment-unknown = Такой оплаты нет.
admin-refund-button = ↩️ Вернуть №{ $id } ({ $stars } ⭐)
admin-refund-usage = Как использовать: <code>/refund &lt;номер оплаты или charge id&gt;</code>
admin-refund-confirm =
    Возврат оплаты №{ $id }: <b>{ $stars } ⭐</b> вернутся пользователю { $user }, а с кошелька, который она пополнила, спишется <b>{ $amount }</b>.
admin-refund-ok-button = ↩️ Вернуть
admin-refund-no-funds = Вернуть нельзя: на кошельке { $balance }, а для возврата нужно { $amount }. Ничего не изменено.
admin-refund-refused = Телеграм отказал в возврате ({ $reason }). Ничего не изменено.
admin-refund-pending = Телеграм не ответил. Баланс уже уменьшен; нажмите «Вернуть» ещё раз, чтобы завершить.
admin-refund-already = Оплата №{ $id } уже возвращена.
admin-refund-done = ↩️ Оплата №{ $id } возвращена: { $stars } ⭐ — плательщику, { $amount } списано. Баланс кошелька: <b>{ $balance }</b>.

admin-broadcast-prompt = Пришлите сообщение для рассылки. Оформление сохранится; сначала будет предпросмотр.
admin-broadcast-too-long = Сообщение пустое или слишком длинное для рассылки (не больше 4000 символов).
admin-broadcast-preview = 📣 Предпросмотр. Получат <b>{ $count }</b> пользователей (не заблокированных и не заблокировавших бота):
admin-broadcast-send-button = ✅ Отправить { $count } пользователям
admin-broadcast-cancel-button = ✖️ Отмена
admin-broadcast-bad = Телеграм не может показать это сообщение ({ $reason }). Оно не отправлено.
admin-broadcast-gone = Этой рассылки больше нет.
admin-broadcast-already = Эта рассылка уже отправлена или отменена.
admin-broadcast-cancelled = Отменено.
admin-broadcast-queued = 📣 В очереди для { $count } пользователей; уходит с той скоростью, какую разрешает Телеграм.

admin-markup-text =
    💲 <b>Наценка</b>: { $percent }% + { $fixed } ({ $source })
    Номер за $1.00 стоит для пользователей <b>{ $example }</b>.

    Чтобы изменить, пришлите процент и, если нужно, фиксированную сумму в долларах, например <code>15</code> или <code>15 0.05</code>.
admin-markup-stored = задана здесь
admin-markup-env = из настроек окружения
admin-markup-reset-button = ↩️ Вернуть из окружения
admin-markup-bad = «{ $text }» — не наценка. Пришлите, например, <code>15</code> или <code>15 0.05</code> (процент 0–1000, фиксированная часть до $100).
admin-markup-saved = ✅ Сохранено. Цены считаются с ней с этой минуты.

admin-export-started = Готовлю файл…
admin-export-caption = Журнал: записей { $entries }, сумма { $total }. Суммы — в 1/10 000 доллара (<code>amount_units</code>) и в долларах.
admin-export-failed = Не удалось отправить файл. Попробуйте ещё раз.
admin-export-usage = Как использовать: <code>/export</code> (всё) или <code>/export 30</code> (последние 30 дней).

admin-alert-low-balance =
    ⚠️ <b>Мало денег на счёте у поставщика номеров</b>: { $balance } (порог оповещения { $threshold }).
    Пополните счёт, иначе покупки начнут срываться.
admin-alert-exhausted =
    ⚠️ <b>Поставщик номеров отказал в покупке: на нашем счёте у него кончились деньги.</b>
    Деньги пользователю вернулись. Пополните счёт у поставщика.
admin-alert-backup =
    ⚠️ <b>Ежедневная резервная копия не создана</b>: { $reason }
    Проверьте папку <code>BACKUP_DIR</code> и место на диске; бот продолжает работать.
admin-alert-crypto =
    ⚠️ Crypto Pay сообщает, что счёт <code>{ $invoice }</code> оплачен, но он не зачислен: { $reason }.
    Проверьте его в @CryptoBot (Crypto Pay → ваше приложение → счета) и зачислите вручную, если деньги пришли.
admin-alert-payment =
    ⚠️ Оплату звёздами не удалось зачислить: платёж <code>{ $charge }</code> от пользователя { $user }, { $stars } ⭐ ({ $reason }).
    Верните её командой <code>/refund { $charge }</code> или зачислите вручную.

# The admins' own command menu (setMyCommands for their chat).
cmd-admin = Панель администратора
cmd-user = Найти пользователя по номеру или @имени
cmd-topup = Пополнить пользователю: /topup кто сумма
cmd-refund = Вернуть оплату звёздами
cmd-ban = Заблокировать пользователя
cmd-unban = Разблокировать пользователя
cmd-markup = Показать или изменить наценку
cmd-stats = Продажи и балансы
cmd-export = Выгрузка журнала операций
cmd-broadcast = Сообщение всем пользователям
cmd-promo = Промокоды: создать, пачка, использования
