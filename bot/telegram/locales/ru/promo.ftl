# Промокоды и пригласительные ссылки. Сообщения в HTML; подписи *-button — простой текст.

ledger-kind-promo = промокод
ledger-kind-referral = покупка приглашённого друга

promo-button = 🎁 Промокод
promo-prompt = 🎁 Отправьте промокод сообщением.
promo-credited = 🎁 Промокод <b>{ $code }</b>: <b>+{ $amount }</b> на ваш баланс. Баланс: <b>{ $balance }</b>.
promo-unknown = 🎁 Промокода «{ $code }» нет. Проверьте его и отправьте ещё раз.
promo-expired = 🎁 Срок действия промокода <b>{ $code }</b> истёк. Баланс не изменился.
promo-used-up = 🎁 Промокод <b>{ $code }</b> уже израсходован. Баланс не изменился.
promo-already-used = 🎁 Вы уже использовали промокод <b>{ $code }</b>. Баланс не изменился.

invite-button = 👥 Пригласить друзей
invite-text =
    👥 <b>Пригласите друзей</b>
    Ваша пригласительная ссылка:
    { $link }
    Друзей пришло по ней: <b>{ $friends }</b>
    Заработано с их покупок: <b>{ $earned }</b>
invite-terms = Вы получаете { $percent }% с каждой покупки друга, по которой пришёл код, до { $cap } с одного друга, на свой баланс.
invite-off = Вознаграждение за приглашённых друзей сейчас выключено; друзья, пришедшие сейчас, всё равно засчитываются.
referral-earned = 👥 Приглашённый вами друг купил номер: <b>+{ $amount }</b> на ваш баланс. Баланс: <b>{ $balance }</b>.

admin-promo-button = 🎁 Промокоды
admin-promo-new-button = ➕ Новый код
admin-promo-batch-button = 📄 Пачка одноразовых кодов
admin-promo-list-empty = Промокодов пока нет.
admin-promo-list-title = 🎁 <b>Промокоды</b> (новые сверху, использовано / всего)
admin-promo-line = <code>{ $code }</code> · { $amount } · { $uses }/{ $max } · { $per_user } · { $expiry }
admin-promo-once = раз на пользователя
admin-promo-repeat = многократный
admin-promo-never = бессрочный
admin-promo-until = до { $date }
admin-promo-expired = истёк { $date }
admin-promo-usage =
    Создать код: <code>/promo add КОД СУММА [uses=N] [days=N] [repeat]</code>
    например <code>/promo add SPRING 2 uses=100 days=30</code> — $2.00, всего 100 использований, каждый пользователь один раз (<code>repeat</code>: можно повторно), на 30 дней.
    Пачка одноразовых кодов файлом-таблицей: <code>/promo batch N СУММА [days=N]</code>
    Список кодов и их использований: <code>/promo</code>
admin-promo-new-prompt = Отправьте новый код: <code>КОД СУММА [uses=N] [days=N] [repeat]</code>, например <code>SPRING 2 uses=100 days=30</code>.
admin-promo-batch-prompt = Отправьте, сколько одноразовых кодов и сумму каждого: <code>N СУММА [days=N]</code>, например <code>50 1 days=90</code>.
admin-promo-created =
    ✅ Промокод <code>{ $code }</code>: { $amount }, использований: { $uses }, { $per_user }, { $expiry }.
    Ссылка для старта: { $link }
admin-promo-batch-caption = ✅ Одноразовых промокодов: { $count }, по { $amount } ({ $expiry }).
admin-promo-batch-failed = Коды созданы, но файл отправить не удалось; /promo покажет их.
admin-promo-bad-usage = Это не похоже на создание промокода.
admin-promo-bad-code = «{ $detail }» не может быть кодом: от 3 до 32 букв, цифр, _ или -, первая — буква или цифра.
admin-promo-bad-amount = «{ $detail }» — не сумма: положительная сумма в долларах до $1,000.00, не больше 4 знаков после точки.
admin-promo-bad-uses = <code>uses</code> — целое число от 1 до 1 000 000.
admin-promo-bad-days = <code>days</code> — целое число от 1 до 3650.
admin-promo-bad-count = В пачке от 1 до 1000 кодов.
admin-promo-bad-exists = Код <code>{ $detail }</code> уже есть (регистр букв в кодах не важен).

admin-stats-sources = <b>Зачисления за 30 дней по источникам</b>: { $sources }
admin-stats-source = { $kind } { $amount }
admin-stats-no-credits = нет
admin-stats-referrals = Приглашённых пользователей: { $friends } · заработали пригласившие: { $earned } · промокодов: { $codes }
