# Promo codes and invite links. Messages are HTML; *-button labels are plain text.

ledger-kind-promo = promo code
ledger-kind-referral = invited friend's purchase

promo-button = 🎁 Promo code
promo-prompt = 🎁 Send the promo code as a message.
promo-credited = 🎁 Promo code <b>{ $code }</b>: <b>+{ $amount }</b> on your balance. Balance: <b>{ $balance }</b>.
promo-unknown = 🎁 There is no promo code “{ $code }”. Check it and send it again.
promo-expired = 🎁 The promo code <b>{ $code }</b> has expired. Your balance is unchanged.
promo-used-up = 🎁 The promo code <b>{ $code }</b> has been used up. Your balance is unchanged.
promo-already-used = 🎁 You have already used the promo code <b>{ $code }</b>. Your balance is unchanged.

invite-button = 👥 Invite friends
invite-text =
    👥 <b>Invite friends</b>
    Your invite link:
    { $link }
    Friends who joined through it: <b>{ $friends }</b>
    Earned from their purchases: <b>{ $earned }</b>
invite-terms = You get { $percent }% of every purchase a friend makes that receives its code, up to { $cap } per friend, on your balance.
invite-off = Rewards for invited friends are switched off at the moment; friends who join now still count.
referral-earned = 👥 A friend you invited bought a number: <b>+{ $amount }</b> on your balance. Balance: <b>{ $balance }</b>.

admin-promo-button = 🎁 Promo codes
admin-promo-new-button = ➕ New code
admin-promo-batch-button = 📄 Batch of one-use codes
admin-promo-list-empty = No promo codes yet.
admin-promo-list-title = 🎁 <b>Promo codes</b> (newest first, uses taken / allowed)
admin-promo-line = <code>{ $code }</code> · { $amount } · { $uses }/{ $max } · { $per_user } · { $expiry }
admin-promo-once = once per user
admin-promo-repeat = repeatable
admin-promo-never = no expiry
admin-promo-until = until { $date }
admin-promo-expired = expired { $date }
admin-promo-usage =
    Create a code: <code>/promo add CODE AMOUNT [uses=N] [days=N] [repeat]</code>
    e.g. <code>/promo add SPRING 2 uses=100 days=30</code> — $2.00, 100 uses in all, each user once (<code>repeat</code>: a user may use it again), for 30 days.
    A batch of one-use codes as a CSV file: <code>/promo batch N AMOUNT [days=N]</code>
    List the codes and their uses: <code>/promo</code>
admin-promo-new-prompt = Send the new code: <code>CODE AMOUNT [uses=N] [days=N] [repeat]</code>, e.g. <code>SPRING 2 uses=100 days=30</code>.
admin-promo-batch-prompt = Send how many one-use codes and the amount of each: <code>N AMOUNT [days=N]</code>, e.g. <code>50 1 days=90</code>.
admin-promo-created =
    ✅ Promo code <code>{ $code }</code>: { $amount }, { $uses } uses, { $per_user }, { $expiry }.
    Start link: { $link }
admin-promo-batch-caption = ✅ { $count } one-use promo codes of { $amount } each ({ $expiry }).
admin-promo-batch-failed = The codes were created but the file could not be sent; /promo lists them.
admin-promo-bad-usage = That is not a promo code to create.
admin-promo-bad-code = “{ $detail }” cannot be a code: 3 to 32 letters, digits, _ or -, starting with a letter or digit.
admin-promo-bad-amount = “{ $detail }” is not an amount: a positive USD amount up to $1,000.00 with at most 4 decimals.
admin-promo-bad-uses = uses must be a whole number from 1 to 1,000,000.
admin-promo-bad-days = days must be a whole number from 1 to 3650.
admin-promo-bad-count = A batch is 1 to 1,000 codes.
admin-promo-bad-exists = A code <code>{ $detail }</code> exists already (codes ignore upper and lower case).

admin-stats-sources = <b>Credits in 30 days, by source</b>: { $sources }
admin-stats-source = { $kind } { $amount }
admin-stats-no-credits = none
admin-stats-referrals = Invited users: { $friends } · earned by their referrers: { $earned } · promo codes: { $codes }
