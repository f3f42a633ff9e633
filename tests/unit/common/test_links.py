"""The link normaliser (services/common/links.py): every form a user or a registry writes, and every refusal."""

from __future__ import annotations

import re

import pytest

from services.common.events import normalise_account_id
from services.common.links import Link, LinkError, looks_like_url, parse_link
from services.common.names import Platform
from services.common.reference import AccountRecord, collect, parse_accounts_csv
from services.ingest.sources.pollers.base import AccountRef

FB, X, IG, YT, LI, TT, MA, BS, TH = (
    Platform.FACEBOOK,
    Platform.X,
    Platform.INSTAGRAM,
    Platform.YOUTUBE,
    Platform.LINKEDIN,
    Platform.TIKTOK,
    Platform.MASTODON,
    Platform.BLUESKY,
    Platform.THREADS,
)
CHANNEL = "UCz8Qm2kRjvT5bXy1wL3nP7A"  # the shape of a YouTube channel id: UC + 22 characters
DID = "did:plc:q4e7nb2wdl5ysx3hkm6tav2c"

# Per account (account_id, and handle: None when the link carries only an id), every form that names it:
# the text alone, or (text, platform) when the platform is given. The account's platform is its id's prefix.
FORMS: dict[tuple[str, str | None], list[str | tuple[str, Platform | str]]] = {
    # Facebook: vanity usernames, whatever the host, scheme, case, trailing path, query or fragment.
    ("facebook:villedegrenoble", "VilledeGrenoble"): [
        "https://www.facebook.com/VilledeGrenoble",
        "http://facebook.com/VilledeGrenoble/",
        "HTTPS://WWW.FACEBOOK.COM/VilledeGrenoble",
        "www.facebook.com/VilledeGrenoble",
        ("facebook.com/VilledeGrenoble", FB),
        "https://m.facebook.com/VilledeGrenoble/about",
        "https://www.facebook.com/VilledeGrenoble?ref=page_internal",
        "https://www.facebook.com/VilledeGrenoble/?fref=ts",
        "https://www.facebook.com/VilledeGrenoble/videos/#top",
        "https://fb.com/VilledeGrenoble",
        "https://fb.me/VilledeGrenoble",
        "http://www.facebook.com/#!/VilledeGrenoble",
        ("VilledeGrenoble", FB),  # Wikidata P2013: a username or a numeric id
        ("@VilledeGrenoble", FB),
    ],
    ("facebook:villedelyon", "villedelyon"): ["https://web.facebook.com/villedelyon/photos/"],
    ("facebook:mairie.de.nantes", "mairie.de.nantes"): ["https://fr-fr.facebook.com/mairie.de.nantes/"],
    ("facebook:paris", "Paris"): ["https://www.facebook.com/Paris/posts/10158912345678901"],
    ("facebook:villedebordeaux", "VilleDeBordeaux"): ["https://www.facebook.com/pg/VilleDeBordeaux/posts/"],
    # Facebook: pages known by their numeric id.
    ("facebook:123456789012345", None): [
        "https://www.facebook.com/pages/Mairie-de-Vif/123456789012345",
        "https://www.facebook.com/pages/Mairie-de-Vif/123456789012345?sk=info",
        ("pages/Mairie-de-Vif/123456789012345", FB),  # a path without host
    ],
    ("facebook:254117401368478", None): [
        "https://www.facebook.com/pages/category/Government-Organization/Mairie-de-Crolles-254117401368478/"
    ],
    ("facebook:180954861916447", None): [
        "https://www.facebook.com/pages/Saint-Égrève/Mairie/180954861916447",
        ("180954861916447", "facebook"),
    ],
    ("facebook:100064575466711", None): [
        "https://www.facebook.com/profile.php?id=100064575466711",
        "https://m.facebook.com/profile.php?id=100064575466711&sk=about",
        "https://www.facebook.com/people/Mairie-de-Seyssins/100064575466711/",
        ("profile.php?id=100064575466711", FB),
    ],
    ("facebook:100057216438520", None): ["https://www.facebook.com/p/Mairie-de-Voreppe-100057216438520/"],
    ("facebook:103254106379012", None): [
        "https://www.facebook.com/Mairie-de-Meylan-103254106379012",
        "https://www.facebook.com/103254106379012",
    ],
    ("facebook:45678901", None): ["http://www.facebook.com/bounce_page#!/pages/Vanity-Url/45678901"],
    # X: both domains, mobile hosts, intents, the old #! form, statuses and query strings.
    ("x:villegrenoble", "VilleGrenoble"): [
        "https://twitter.com/VilleGrenoble",
        "https://x.com/VilleGrenoble",
        "https://mobile.twitter.com/VilleGrenoble",
        "https://mobile.x.com/VilleGrenoble/",
        "https://twitter.com/intent/user?screen_name=VilleGrenoble",
        "http://twitter.com/#!/VilleGrenoble",
        ("twitter.com/VilleGrenoble", "twitter"),
        ("@VilleGrenoble", X),
        ("VilleGrenoble", "x"),
        "  https://x.com/VilleGrenoble\u200b ",  # whatever a spreadsheet leaves around a value
    ],
    ("x:lyon", "Lyon"): ["https://www.twitter.com/Lyon?lang=fr"],
    ("x:marseille", "Marseille"): ["https://twitter.com/Marseille/status/1234567890123456789"],
    ("x:toulouse", "toulouse"): ["https://x.com/toulouse/with_replies"],
    ("x:nantes", "Nantes"): ["https://twitter.com/intent/follow?screen_name=Nantes&original_referer=x"],
    ("x:isere_dept", "Isere_Dept"): [("Isere_Dept", X)],
    # Instagram.
    ("instagram:villedegrenoble", "villedegrenoble"): [
        "https://www.instagram.com/villedegrenoble/",
        "http://instagr.am/villedegrenoble",
        "https://www.instagram.com/stories/villedegrenoble/3141592653589793238/",
        ("@villedegrenoble", IG),
    ],
    ("instagram:ville.de.lyon", "ville.de.lyon"): [
        "https://instagram.com/ville.de.lyon?igshid=abc123",
        ("ville.de.lyon", IG),
    ],
    ("instagram:ville_de_paris", "Ville_De_Paris"): ["https://www.instagram.com/Ville_De_Paris/reels/"],
    # YouTube: channel ids (case kept), handles, custom URLs, legacy usernames.
    (f"youtube:{CHANNEL}", None): [
        f"https://www.youtube.com/channel/{CHANNEL}",
        f"https://m.youtube.com/channel/{CHANNEL}/videos?view_as=subscriber",
        f"youtube.com/channel/{CHANNEL}/featured",
        (CHANNEL, YT),  # Wikidata P2397
    ],
    ("youtube:villedegrenoble", "VilledeGrenoble"): [
        "https://www.youtube.com/@VilledeGrenoble",
        "https://www.youtube.com/@VilledeGrenoble/featured",
        "https://www.youtube.com/c/VilledeGrenoble",
        "https://www.youtube.com/VilledeGrenoble",
        ("@VilledeGrenoble", YT),
    ],
    ("youtube:villedegrenoble", "villedegrenoble"): ["https://www.youtube.com/user/villedegrenoble/videos"],
    ("youtube:ville-évry", "Ville-Évry"): ["https://www.youtube.com/@Ville-%C3%89vry"],
    # LinkedIn: organisation pages by name or numeric id, any subdomain.
    ("linkedin:ville-de-grenoble", "ville-de-grenoble"): [
        "https://www.linkedin.com/company/ville-de-grenoble/",
        "https://fr.linkedin.com/company/ville-de-grenoble",
        ("ville-de-grenoble", LI),  # Wikidata P4264
    ],
    ("linkedin:region-aura", "Region-AURA"): ["https://www.linkedin.com/company/Region-AURA/about/"],
    ("linkedin:10424578", None): ["https://www.linkedin.com/company/10424578/", ("10424578", LI)],
    ("linkedin:universite-grenoble-alpes", "universite-grenoble-alpes"): [
        "https://www.linkedin.com/school/universite-grenoble-alpes/"
    ],
    ("linkedin:grenoble-capitale-verte", "grenoble-capitale-verte"): [
        "https://www.linkedin.com/showcase/grenoble-capitale-verte/"
    ],
    ("linkedin:région-bretagne", "région-bretagne"): [
        "https://www.linkedin.com/company/r%C3%A9gion-bretagne/"
    ],
    # TikTok.
    ("tiktok:villedegrenoble", "villedegrenoble"): [
        "https://www.tiktok.com/@villedegrenoble",
        "https://www.tiktok.com/@villedegrenoble/video/7212345678901234567?lang=fr",
        ("villedegrenoble", TT),  # Wikidata P7085
    ],
    ("tiktok:ville.de.lyon", "Ville.De.Lyon"): ["https://m.tiktok.com/@Ville.De.Lyon"],
    # Threads: both domains.
    ("threads:villedegrenoble", "villedegrenoble"): [
        "https://www.threads.net/@villedegrenoble",
        "https://www.threads.com/@villedegrenoble/post/C8x1y2z3",
        ("villedegrenoble", TH),  # Wikidata P11892
    ],
    ("threads:ville.de.lyon", "ville.de.lyon"): ["threads.net/@ville.de.lyon"],
    # Mastodon: addresses and links on any server.
    ("mastodon:ville@mastodon.social", "ville@mastodon.social"): [
        "@ville@mastodon.social",
        ("https://mastodon.social/users/ville", MA),
        "https://mastodon.social/web/@ville",
    ],
    ("mastodon:villedelyon@mastodon.social", "VilleDeLyon@mastodon.social"): ["VilleDeLyon@Mastodon.Social"],
    ("mastodon:mairie@piaille.fr", "mairie@piaille.fr"): [
        "acct:mairie@piaille.fr",
        "https://piaille.fr/@mairie",
    ],
    ("mastodon:ville@social.grenoble.fr", "Ville@social.grenoble.fr"): [
        "https://social.grenoble.fr/@Ville/112233445566778899"
    ],
    ("mastodon:ville@piaille.fr", "ville@piaille.fr"): ["https://mastodon.social/@ville@piaille.fr"],
    ("mastodon:mairie_exemple@piaille.fr", "mairie_exemple@piaille.fr"): [
        ("mairie_exemple@piaille.fr", MA)  # Wikidata P4033
    ],
    # Bluesky: profiles, handles (bsky.social or custom domains), DIDs.
    ("bluesky:grenoble.fr", "grenoble.fr"): ["https://bsky.app/profile/grenoble.fr"],
    ("bluesky:grenoble.bsky.social", "grenoble.bsky.social"): [
        "https://bsky.app/profile/Grenoble.bsky.social/post/3kabc",
        "@grenoble.bsky.social",
        "grenoble.bsky.social",
        "https://grenoble.bsky.social",
    ],
    (f"bluesky:{DID}", None): [f"https://bsky.app/profile/{DID}", DID, f"at://{DID}"],
    ("bluesky:ville.fr", "ville.fr"): [("ville.fr", BS)],  # Wikidata P12361, a custom-domain handle
    ("bluesky:auvergnerhonealpes.fr", "auvergnerhonealpes.fr"): [("@AuvergneRhoneAlpes.fr", BS)],
    ("bluesky:did:web:ville.fr", None): ["did:web:ville.fr"],
}
# (text, platform given or None, account_id, handle)
ACCEPTED: list[tuple[str, Platform | str | None, str, str | None]] = [
    (form, None, *account) if isinstance(form, str) else (*form, *account)
    for account, forms in FORMS.items()
    for form in forms
]

# (text, platform given or None, a part of the message)
REFUSED: list[tuple[str, Platform | str | None, str]] = [
    ("", None, "empty link"),
    ("   ", FB, "empty link"),
    ("https://www.facebook.com/groups/123456789/", None, "is a group, not an account"),
    ("https://www.facebook.com/events/987654321/", None, "is an event, not an account"),
    ("https://www.facebook.com/sharer/sharer.php?u=https://grenoble.fr", None, "is a share button"),
    ("https://www.facebook.com/sharer.php?u=https://grenoble.fr", None, "is a share button"),
    ("https://www.facebook.com/watch/?v=123456789", None, "is a video"),
    ("https://www.facebook.com/hashtag/grenoble", None, "is a hashtag"),
    ("https://www.facebook.com/search/top?q=grenoble", None, "is a search"),
    ("https://www.facebook.com/", None, "home page, not an account"),
    ("facebook.com", None, "home page, not an account"),
    ("https://fb.watch/abcDEF123/", None, "a Facebook video link"),
    ("https://www.facebook.com/pages/Mairie-de-Vif/", None, "has no numeric page id"),
    ("https://www.facebook.com/profile.php", None, "has no numeric id="),
    ("https://www.facebook.com/Ville-de-Grenoble", None, "is not a Facebook username"),
    ("Ville de Grenoble", FB, "contains spaces"),
    ("https://x.com/home", None, "is a page of X, not an account"),
    ("https://twitter.com/search?q=grenoble", None, "is a search"),
    ("https://twitter.com/hashtag/Grenoble", None, "is a hashtag"),
    ("https://twitter.com/intent/user?user_id=123456", None, "by its numeric id"),
    ("https://twitter.com/intent/tweet?text=hello", None, "is a share button"),
    ("https://x.com/Ville_de_Grenoble_38", None, "is not an X username: 1-15"),
    ("@ville-grenoble", X, "is not an X username"),
    ("https://www.instagram.com/p/CxYz123AbC/", None, "is a post, not an account"),
    ("https://www.instagram.com/explore/tags/grenoble/", None, "is a search"),
    ("ville de grenoble", IG, "contains spaces"),
    ("ville-de-grenoble", IG, "is not an Instagram username"),
    ("https://www.instagram.com/a" + "b" * 30, None, "is not an Instagram username: 1-30"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", None, "is a video, not an account"),
    ("https://youtu.be/dQw4w9WgXcQ", None, "a YouTube video link"),
    ("https://www.youtube.com/results?search_query=grenoble", None, "is a search or a feed"),
    ("https://www.youtube.com/playlist?list=PL123", None, "is a playlist"),
    ("https://www.youtube.com/channel/UC123", None, "has no channel id"),
    ("@ab", YT, "is not a YouTube handle: 3-30"),
    ("https://www.linkedin.com/in/jean-dupont/", None, "is a personal profile"),
    ("https://www.linkedin.com/feed/", None, "is not an organisation page"),
    ("https://lnkd.in/eXaMpLe", None, "a LinkedIn short link"),
    ("https://www.tiktok.com/tag/grenoble", None, "is not a profile"),
    ("https://vm.tiktok.com/ZMabc123/", None, "a TikTok short link"),
    ("@v", TT, "is not a TikTok username: 2-24"),
    ("https://www.threads.net/villedegrenoble", None, "is not a profile"),
    ("@ville", MA, "lacks its server"),
    ("ville@127.0.0.1", MA, "is not a Mastodon server name"),
    ("https://mastodon.social:8443/@ville", None, "without port or credentials"),
    ("https://mastodon.social/about", MA, "is not a Mastodon profile"),
    ("https://bsky.app/search?q=grenoble", None, "is not a profile"),
    ("bad_handle", BS, "is not a Bluesky handle"),
    ("grenoble.local", BS, "is not a Bluesky handle"),
    ("did:plc:tooshort", None, "is not a Bluesky DID"),
    ("did:plc:q4e7nb2wdl5ysx3hkm6tav2c", FB, "is a bluesky address, not a facebook one"),
    ("https://www.facebook.com/VilledeGrenoble", X, "is a facebook link, not a x one"),
    ("https://x.com/VilleGrenoble", "instagram", "is a x link, not a instagram one"),
    ("https://piaille.fr/@mairie", FB, "is not a facebook link"),
    ("VilledeGrenoble", None, "is a bare handle: name its platform"),
    ("ville.fr", None, "is a bare handle"),
    ("https://www.grenoble.fr/", None, "not a link to an account on a known platform"),
    ("https://medium.com/@villedegrenoble", None, "not a link to an account on a known platform"),
    ("ftp://facebook.com/VilledeGrenoble", None, "not an http(s) address"),
    ("javascript://x.com/VilleGrenoble", None, "not an http(s) address"),
    ("Mairie/Grenoble", None, "neither a URL nor a handle"),
    ("VilledeGrenoble", "myspace", "unknown platform 'myspace'"),
]


def _ids(cases: list[tuple[object, ...]]) -> list[str]:
    return [f"{case[0]!s}|{case[1]!s}" for case in cases]


def test_the_tables_are_large_and_without_repeats() -> None:
    assert len(ACCEPTED) + len(REFUSED) >= 80
    assert len({(text, str(p)) for text, p, *_ in ACCEPTED}) == len(ACCEPTED)
    assert len({(text, str(p)) for text, p, _ in REFUSED}) == len(REFUSED)
    # Every platform has accepted forms, and (almost) every one refusals.
    assert {account_id.partition(":")[0] for _, _, account_id, _ in ACCEPTED} == {p.value for p in Platform}


@pytest.mark.parametrize(("text", "platform", "account_id", "handle"), ACCEPTED, ids=_ids(ACCEPTED))
def test_accepted(text: str, platform: Platform | str | None, account_id: str, handle: str | None) -> None:
    link = parse_link(text, platform)
    assert (link.account_id, link.handle) == (account_id, handle)
    assert link.platform.value == account_id.partition(":")[0]
    # The stable id, when the link carries one, is what the account id is made of.
    if link.platform_id is not None:
        assert link.account_id == f"{link.platform.value}:{link.platform_id}"
    else:
        assert link.handle is not None
    # Properties: the stored form, the canonical URL names the same account, and parsing is idempotent.
    assert normalise_account_id(link.account_id) == link.account_id
    assert link.url.startswith("https://") and " " not in link.url
    assert parse_link(link.url) == link
    assert parse_link(link.url, link.platform) == link
    # Naming the platform never changes the answer for a full URL.
    if platform is None and looks_like_url(text):
        assert parse_link(text, link.platform) == link


@pytest.mark.parametrize(("text", "platform", "message"), REFUSED, ids=_ids(REFUSED))
def test_refused(text: str, platform: Platform | str | None, message: str) -> None:
    with pytest.raises(LinkError, match=re.escape(message)):
        parse_link(text, platform)


def test_canonical_urls() -> None:
    assert parse_link("https://m.facebook.com/VilledeGrenoble/about/?ref=page_internal").url == (
        "https://www.facebook.com/VilledeGrenoble"
    )
    assert parse_link("facebook.com/pages/Mairie/123456789012345").url == (
        "https://www.facebook.com/profile.php?id=123456789012345"
    )
    assert (
        parse_link("https://mobile.twitter.com/VilleGrenoble/status/1").url == "https://x.com/VilleGrenoble"
    )
    assert parse_link("instagr.am/villedegrenoble").url == "https://www.instagram.com/villedegrenoble/"
    assert (
        parse_link(f"m.youtube.com/channel/{CHANNEL}/about").url
        == f"https://www.youtube.com/channel/{CHANNEL}"
    )
    assert parse_link("youtube.com/c/VilledeGrenoble").url == "https://www.youtube.com/@VilledeGrenoble"
    assert parse_link("https://fr.linkedin.com/school/uga/").url == "https://www.linkedin.com/school/uga/"
    assert parse_link("ville-de-grenoble", LI).url == "https://www.linkedin.com/company/ville-de-grenoble/"
    assert parse_link("threads.net/@ville").url == "https://www.threads.com/@ville"
    assert parse_link("@ville@Piaille.FR").url == "https://piaille.fr/@ville"
    assert parse_link("https://ville.bsky.social/").url == "https://bsky.app/profile/ville.bsky.social"


def test_link_fields() -> None:
    assert parse_link("https://www.facebook.com/VilledeGrenoble") == Link(
        platform=Platform.FACEBOOK,
        handle="VilledeGrenoble",
        platform_id=None,
        account_id="facebook:villedegrenoble",
        url="https://www.facebook.com/VilledeGrenoble",
    )
    did = parse_link(f"bsky.app/profile/{DID.upper()}")
    assert (did.platform_id, did.handle, did.account_id) == (DID, None, f"bluesky:{DID}")


def test_a_link_error_is_a_value_error() -> None:
    # Callers that catch ValueError (the import files, AccountRef.create) see link errors too.
    with pytest.raises(ValueError, match="is a group"):
        parse_link("https://www.facebook.com/groups/grenoble")


def test_looks_like_url() -> None:
    assert looks_like_url("https://x.com/a") and looks_like_url("www.facebook.com/a")
    assert looks_like_url("//x.com/a") and looks_like_url("pages/Name/123")
    assert not looks_like_url("@VilleGrenoble")
    assert not looks_like_url("@ville@mastodon.social")
    assert not looks_like_url(DID)


# --- Through the accounts file import.


def test_grenoble_pasted_link_is_imported_as_the_account() -> None:
    lines = [
        "entity_id,platform,handle,url",
        "COM:38185,facebook,https://www.facebook.com/VilledeGrenoble,",  # 2: the link in the handle column
        "COM:38185,x,,https://mobile.twitter.com/VilleGrenoble/status/1?lang=fr",  # 3: a url alone
        "COM:38185,youtube,@VilledeGrenoble,https://www.youtube.com/@villedegrenoble/videos",  # 4: the same
        "COM:38185,instagram,villedegrenoble,https://www.instagram.com/grenoble_officiel/",  # 5: two accounts
        "COM:38185,linkedin,https://www.linkedin.com/in/jean-dupont/,",  # 6: not an organisation
        "COM:38185,bluesky,https://x.com/VilleGrenoble,",  # 7: another platform's link
        "DEP:38,facebook,IsereDepartement,https://www.facebook.com/profile.php?id=180954861916447",  # 8
        "DEP:38,x,,https://www.facebook.com/IsereDepartement",  # 9: the url column is checked too
        "DEP:38,x,@Isere38,",  # 10: a plain handle is kept as written
        "DEP:38,mastodon,https://piaille.fr/@isere,",  # 11
        "DEP:38,tiktok,,",  # 12
    ]
    good, bad = collect(parse_accounts_csv(lines))
    records = dict(good)
    assert records[2] == AccountRecord(
        "COM:38185",
        Platform.FACEBOOK,
        "facebook:villedegrenoble",
        "VilledeGrenoble",
        "https://www.facebook.com/VilledeGrenoble",
    )
    assert records[3] == AccountRecord(
        "COM:38185", Platform.X, "x:villegrenoble", "VilleGrenoble", "https://x.com/VilleGrenoble"
    )
    assert records[4] == AccountRecord(
        "COM:38185",
        Platform.YOUTUBE,
        "youtube:villedegrenoble",
        "@VilledeGrenoble",
        "https://www.youtube.com/@villedegrenoble",
    )
    # A handle and an id that may be one account: the stable id names it, the handle is kept for display.
    assert records[8] == AccountRecord(
        "DEP:38",
        Platform.FACEBOOK,
        "facebook:180954861916447",
        "IsereDepartement",
        "https://www.facebook.com/profile.php?id=180954861916447",
        platform_id="180954861916447",
    )
    assert records[10] == AccountRecord("DEP:38", Platform.X, "x:isere38", "@Isere38", None)
    assert records[11] == AccountRecord(
        "DEP:38",
        Platform.MASTODON,
        "mastodon:isere@piaille.fr",
        "isere@piaille.fr",
        "https://piaille.fr/@isere",
    )
    reasons = dict(bad)
    assert sorted(reasons) == [5, 6, 7, 9, 12]
    assert reasons[5] == (
        "handle 'villedegrenoble' and url 'https://www.instagram.com/grenoble_officiel/' name different "
        "accounts (instagram:villedegrenoble, instagram:grenoble_officiel)"
    )
    assert reasons[6].startswith("handle: ") and "is a personal profile" in reasons[6]
    assert reasons[7].startswith("handle: ") and "is a x link, not a bluesky one" in reasons[7]
    assert reasons[9].startswith("url: ") and "is a facebook link, not a x one" in reasons[9]
    assert reasons[12] == "a handle, a url or an account_id is needed"


def test_accounts_file_with_only_a_url_column() -> None:
    good, bad = collect(
        parse_accounts_csv(
            ["entity_id,platform,url", "REG:84,bluesky,https://bsky.app/profile/auvergnerhonealpes.fr"]
        )
    )
    assert bad == []
    assert good == [
        (
            2,
            AccountRecord(
                "REG:84",
                Platform.BLUESKY,
                "bluesky:auvergnerhonealpes.fr",
                "auvergnerhonealpes.fr",
                "https://bsky.app/profile/auvergnerhonealpes.fr",
            ),
        )
    ]


def test_an_explicit_account_id_still_wins() -> None:
    lines = [
        "entity_id,platform,handle,account_id,url",
        # The id wins over the link's handle; the link still gives the display handle and the URL.
        "COM:38185,facebook,https://www.facebook.com/VilledeGrenoble/,facebook:123456789,",
        # With an explicit id, a plain handle is display text, kept as written even if no rule fits it.
        "COM:38185,bluesky,ville_de_grenoble,bluesky:did:plc:q4e7nb2wdl5ysx3hkm6tav2c,",
        # But a link is still read, and a bad one refused.
        "COM:38185,x,https://x.com/home,x:villegrenoble,",
    ]
    good, bad = collect(parse_accounts_csv(lines))
    assert good == [
        (
            2,
            AccountRecord(
                "COM:38185",
                Platform.FACEBOOK,
                "facebook:123456789",
                "VilledeGrenoble",
                "https://www.facebook.com/VilledeGrenoble",
            ),
        ),
        (
            3,
            AccountRecord("COM:38185", Platform.BLUESKY, f"bluesky:{DID}", "ville_de_grenoble", None),
        ),
    ]
    assert [line for line, _ in bad] == [4]
    assert "is a page of X, not an account" in bad[0][1]


def test_the_same_account_twice_through_different_forms_is_a_duplicate() -> None:
    lines = [
        "entity_id,platform,handle",
        "COM:38185,facebook,https://www.facebook.com/VilledeGrenoble",
        "COM:38185,facebook,VilledeGrenoble",
        "COM:38185,facebook,m.facebook.com/villedegrenoble/about?ref=page_internal",
    ]
    good, bad = collect(parse_accounts_csv(lines))
    assert [line for line, _ in good] == [2]
    assert bad == [
        (3, "duplicate account_id facebook:villedegrenoble (first on line 2)"),
        (4, "duplicate account_id facebook:villedegrenoble (first on line 2)"),
    ]


def test_accounts_file_needs_a_handle_or_url_column() -> None:
    good, bad = collect(parse_accounts_csv(["entity_id,platform,account_id", "COM:38185,x,x:villegrenoble"]))
    assert good == [] and len(bad) == 1
    assert bad[0][1].startswith("missing column(s) handle or url")


# --- Through the pollers' account references.


def test_account_ref_reads_a_link_given_as_handle() -> None:
    ref = AccountRef.create(
        "facebook", handle="https://www.facebook.com/VilledeGrenoble/", entity_id="COM:38185"
    )
    assert (ref.account_id, ref.lookup, ref.handle) == (
        "facebook:villedegrenoble",
        "villedegrenoble",
        "VilledeGrenoble",
    )
    by_id = AccountRef.create("facebook", handle="https://www.facebook.com/profile.php?id=180954861916447")
    assert (by_id.account_id, by_id.lookup, by_id.handle) == (
        "facebook:180954861916447",
        "180954861916447",
        None,
    )
    mastodon = AccountRef.create("mastodon", handle="https://piaille.fr/@mairie")
    assert (mastodon.account_id, mastodon.handle) == ("mastodon:mairie@piaille.fr", "mairie@piaille.fr")
    # A channel id given as a plain handle keeps its case (the plain rule would lower-case it).
    assert AccountRef.create("youtube", handle=CHANNEL).account_id == f"youtube:{CHANNEL}"
    # An explicit account_id still wins; the link only gives the display handle.
    kept = AccountRef.create("x", account_id="x:123456", handle="https://x.com/VilleGrenoble")
    assert (kept.account_id, kept.handle) == ("x:123456", "VilleGrenoble")
    with pytest.raises(ValueError, match="is a facebook link, not a x one"):
        AccountRef.create("x", handle="https://www.facebook.com/VilledeGrenoble")
    with pytest.raises(ValueError, match="is a group"):
        AccountRef.create(
            "facebook", account_id="facebook:1", handle="https://www.facebook.com/groups/grenoble"
        )
    # A plain handle the normaliser refuses keeps the plain rule: its poller reports it.
    assert AccountRef.create("mastodon", handle="sans_serveur").account_id == "mastodon:sans_serveur"
