# Пополнение через Crypto Pay (@CryptoBot). Сообщения — HTML; подписи *-button и описание
# счёта — простой текст.

topup-crypto-line = 💎 Или оплатите криптовалютой (USDT, TON, BTC …) через Crypto Pay: кнопка 💎 Крипта.
crypto-button = 💎 Крипта
crypto-text =
    💎 <b>Пополнение криптовалютой</b> (Crypto Pay, @CryptoBot)
    Выберите сумму или пришлите её в долларах США (например, 7.50). Оплата в { $assets } по текущему курсу; на баланс зачисляется ровно эта сумма в долларах.
crypto-amount-button = { $price }
crypto-invoice-description = { $price } на ваш баланс для покупки номеров
crypto-invoice-text =
    💎 Счёт на <b>{ $price }</b>
    Оплатите в { $assets } через Crypto Pay в течение { $minutes } мин. Баланс пополнится, как только оплата будет видна, а сюда придёт чек.
crypto-pay-link = Оплатить: { $url }
crypto-pay-button = Оплатить { $price }
crypto-paid = ✅ Оплата получена: <b>{ $amount }</b> через Crypto Pay ({ $asset }). Баланс: <b>{ $balance }</b>.
crypto-paid-group = ✅ Оплата получена: <b>{ $amount }</b> через Crypto Pay ({ $asset }) на кошелёк группы. Баланс группы: <b>{ $balance }</b>.
crypto-invoice-paid = ✅ Счёт на { $price } оплачен.
crypto-expired = ⌛ Счёт на { $price } истёк без оплаты; ничего не списано. Новый счёт можно создать в любой момент.
crypto-again-button = 💎 Новый счёт
crypto-unavailable = 😕 Crypto Pay сейчас не отвечает, поэтому счёт не создан и ничего не списано. Попробуйте через минуту.
crypto-off = Оплата криптовалютой сейчас отключена. ⭐ Звёзды Телеграма работают.
crypto-amount-format = «{ $text }» — не сумма. Пришлите число долларов США, например 5 или 7.50.
crypto-amount-not_positive = Сумма должна быть больше нуля.
crypto-amount-decimals = Только целые центы, пожалуйста (например, 7.50).
crypto-amount-too_large = Не больше { $max } за один счёт.
crypto-amount-too_small = Не меньше { $min } за один счёт.

# Funding a group wallet with Crypto Pay (the group's ⭐ screen → 💎 Crypto).
group-crypto-text = 💎 Выберите сумму; счёт Crypto Pay может оплатить любой участник группы в { $assets }, и деньги поступят на кошелёк группы:
group-crypto-description = { $price } на кошелёк этой группы для покупки номеров
