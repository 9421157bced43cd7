# Catalogue, pools and purchase. Messages are HTML; *-button labels are plain text.

countries-text = Choose a country:
services-text =
    <b>Choose a service</b>
    Tap a service to buy a number at the price shown; your favourites (⭐) come first.
    You can also type part of a name to search.
services-page = Page { $page } of { $pages }
services-empty = No services are available right now. Please try again in a minute.
service-button = { $name } — { $price }
service-multi-button = { $name } — from { $price } ›
service-soldout-button = { $name } — sold out ›
service-starred = ⭐ { $label }
favourites-button = ⭐ Favourites
favourites-text =
    <b>Favourites</b>
    Tap a service to add it to your favourites (⭐) or take it off; they come first in the list.
favourite-on-button = ⭐ { $name }
favourite-off-button = ☆ { $name }
favourites-done-button = ✅ Done
star-added = Added to favourites.
star-removed = Removed from favourites.
page-prev-button = ‹ Back
page-next-button = Next ›
answer-below = The answer is in a new message below ⬇️
buy-done-button = ✅ Bought — see its card
services-button = « Services
search-results = Services matching “{ $query }”:
search-none =
    Nothing matches “{ $query }”.
    Try a shorter part of the name, or browse the list.

pools-text =
    <b>{ $name }</b>
    Choose a pool. “Cheapest available” takes the cheapest pool that has numbers right now.
pools-none =
    <b>{ $name }</b>
    All pools are empty right now. Try again in a minute or choose another service.
pool-cheapest-button = ⚡ Cheapest available — { $price }
pool-button = Pool { $pool } — { $price } · { $count } left
retry-button = 🔄 Try again
retry-price-button = 🔄 Try again — { $price }

buy-started = Buying…
buy-already = This button has already bought a number — see its card.
buy-already-pending = This purchase is still going through — wait a moment.
buy-price-changed =
    The price of <b>{ $name }</b> has changed: it is now <b>{ $price }</b> (was { $old }).
    Buy at the new price?
buy-confirm-button = ✅ Buy for { $price }
buy-gone =
    <b>{ $name }</b> is not offered right now. Please choose another service.
buy-insufficient =
    Not enough balance: this number costs <b>{ $price }</b>, your balance is <b>{ $balance }</b>.
    { $howto }
buy-topup-and-buy = ⭐ Top up { $amount } and buy ({ $stars } ⭐)
buy-out-of-stock-pool =
    Pool { $pool } of <b>{ $name }</b> has just run out — you were not charged.
    Choose another pool or take the cheapest available:
buy-out-of-stock =
    <b>{ $name }</b> has no numbers right now — you were not charged.
    Try again in a minute or choose another service.
buy-rate-limited =
    Many purchases are going through right now — you were not charged.
    Please try again in { $seconds } s.
buy-provider-error =
    The provider had a hiccup — you were not charged.
    Please try again.
buy-price-verification =
    Prices have just changed — you were not charged.
    Please choose again from the updated list.
buy-unavailable =
    Numbers cannot be bought right now — you were not charged.
    The admins have been told; please try again later.
buy-failed =
    The purchase did not go through — you were not charged.
    Please try again.
buy-pending =
    The provider is slow to confirm your purchase of <b>{ $name }</b>.
    Your money is held, not lost: in a few minutes you get either the number or a full refund.
buy-again-not-member = Buy again needs the wallet of «{ $group }», and you are no longer a member of that group. Nothing was charged.
