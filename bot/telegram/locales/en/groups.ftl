# Groups: the group wallet, its funding, the member limit and group purchases; where group
# purchases are delivered. Messages are HTML; *-button labels and answers are plain text.

group-cmd-buy = Buy a number with the group wallet
group-cmd-wallet = The group wallet
group-cmd-fund = Fund the group wallet
group-cmd-limit = Daily limit per member
group-cmd-spending = Group spending
group-cmd-help = How it works in a group

group-welcome =
    👋 Hello! This group now has its own wallet for buying virtual US numbers.
    Group admins: fund it with /wallet (from your own balance or with Telegram Stars) and set a daily limit per member.
    Members: /buy to get a number paid by the group.
group-help =
    <b>The bot in a group</b>
    /buy — buy a number paid by the group wallet, within your daily limit
    /wallet — the group balance, funding and limits
    /fund 10 — move $10 from your own balance to the group (admins)
    /limit 5 — at most $5 a day per member; <code>/limit off</code> — no limit (admins)
    /spending — who spent what (admins)
    Numbers and codes go to you privately if you have started me and want it so (/settings in a private chat), otherwise here.

group-panel =
    👥 <b>{ $title }</b> — group wallet
    Balance: <b>{ $balance }</b>
    Daily limit per member: <b>{ $limit }</b>
    You spent today: { $spent }
group-panel-left = You can still spend today: { $left }
group-no-limit = no limit
group-fund-button = 💸 Fund from my balance
group-stars-button = ⭐ Fund with Stars
group-limit-button = 📏 Daily limit
group-spending-button = 📊 Spending
group-back-button = « Group wallet
group-admins-only = Only the group's admins can do this.
group-your-balance = Your own balance: { $balance }

group-fund-text = Move money from your own balance to the group wallet:
group-fund-usage = Usage: <code>/fund 10</code> moves $10 from your own balance to the group wallet.
group-fund-insufficient = Your own balance is { $balance }, not enough to move { $amount }. Top it up in a private chat with me first.
group-fund-duplicate = This transfer was already done; nothing more was moved.
group-funded = ✅ { $name } moved <b>{ $amount }</b> to the group wallet. Group balance: <b>{ $balance }</b>.
group-stars-text = Choose an amount; anyone in the group can pay the invoice and the Stars fund the group wallet:

group-limit-text = How much may each member spend per day (UTC) from the group wallet? Or send <code>/limit 7.50</code>.
group-limit-none-button = No limit
group-limit-set = ✅ Daily limit per member: <b>{ $limit }</b>.
group-limit-usage = The daily limit per member is <b>{ $limit }</b>. Change it with <code>/limit 5</code>, <code>/limit 0</code> (no buying) or <code>/limit off</code>.

group-spending-none = Nothing spent yet.
group-spending =
    📊 <b>Group spending</b>
    Balance: <b>{ $balance }</b> · today: { $today } · 30 days: { $month } · funded in 30 days: { $funded }
group-spending-today = <b>Today</b>:
group-spending-month = <b>Last 30 days</b>:
group-spending-line = { $name }: { $amount } ({ $count } numbers)

group-services =
    <b>Buy a number — paid by the group wallet</b>
    Group balance: { $balance } · you can spend today: { $left }
group-bought-private = ✅ { $name } bought a { $service } number; it was sent privately.
group-queued-private = ⏳ { $name } is in line for a { $service } number; the details were sent privately.
group-start-hint = { $name }: I cannot write to you privately, so your number is here. Start a private chat with me to get numbers privately.
group-insufficient =
    { $name }: the group wallet holds { $balance }, and this number costs { $price }.
    Group admins can fund it with /wallet or /fund.
group-limit-reached =
    { $name }: your daily limit in this group is { $limit }; you have spent { $spent } today and this number costs { $price }.
    The limit resets at midnight UTC.
group-card-not-yours = Only the buyer and the group's admins can use this.
group-card-cancelled = Cancelled: { $price } is back on the group wallet.
group-private-button = This button works in a private chat with me.

prefs-text =
    <b>Settings</b>
    Numbers you buy in groups, and their codes, go:
prefs-private-button = To me privately
prefs-group-button = To the group
prefs-saved = Saved.
