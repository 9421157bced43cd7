# Очередь покупок: место покупателя. Сообщения в HTML; *-button и *-answer — простой текст.

queue-text =
    ⏳ <b>{ $service }</b> — { $price } зарезервированы для вас.
    Вы <b>{ $ordinal ->
       *[other] { $place }-й
    } в очереди</b>, { $wait }.

    Поставщик продаёт лишь несколько номеров в минуту, а покупают сейчас многие. Номер появится здесь сам. Выйдите из очереди в любой момент — и { $price } вернутся на баланс.
queue-wait-soon = вот-вот
queue-wait-seconds = примерно { $seconds } с
queue-wait-minutes = примерно { $minutes } мин
queue-leave-button = ✖️ Выйти из очереди
queue-joined-answer = Вы в очереди: место { $place }.
queue-already-answer = Вы уже в очереди: место { $place }.
queue-left-answer = Вы вышли из очереди: { $price } вернулись на баланс.
queue-already-left-answer = Вы уже вышли из очереди.
queue-not-queued-answer = Покупка уже выполняется, выйти из очереди нельзя.
queue-full =
    У вас уже { $limit } { $limit ->
        [one] покупка
        [few] покупки
       *[many] покупок
    } в очереди — за эту деньги не списаны.
    Дождитесь одной из них или выйдите из очереди, затем попробуйте снова.
