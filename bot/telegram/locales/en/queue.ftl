# The purchase queue: a buyer's place in line. Messages are HTML; *-button and *-answer are plain.

queue-text =
    ⏳ <b>{ $service }</b> — { $price } is held for you.
    You are <b>{ $ordinal ->
        [one] { $place }st
        [two] { $place }nd
        [few] { $place }rd
       *[other] { $place }th
    } in line</b>, { $wait }.

    The provider sells only a few numbers a minute and many people are buying right now. Your number appears here by itself. Leave the line at any time to get { $price } back.
queue-wait-soon = any moment now
queue-wait-seconds = about { $seconds } s
queue-wait-minutes = about { $minutes } min
queue-leave-button = ✖️ Leave the line
queue-joined-answer = You are in line: place { $place }.
queue-already-answer = You are already in line: place { $place }.
queue-left-answer = You left the line: { $price } is back on your balance.
queue-already-left-answer = You have already left the line.
queue-not-queued-answer = Your purchase is already going through; it can no longer leave the line.
queue-full =
    You already have { $limit } purchases waiting in line — you were not charged for this one.
    Wait for one of them to go through, or leave one, then try again.
