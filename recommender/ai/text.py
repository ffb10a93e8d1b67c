"""Text utilities of the AI providers: content words, the check of generated text (`refused`,
`presentable`), and the offline texts that never fail it: the extractive summary, the keyword
profile and the shared-words topic label."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from recommender.ai.prompts import PROFILE_MAX_CHARS, SUMMARY_MAX_CHARS

MIN_GENERATED_CHARS = 10

# --- the check of generated text ------------------------------------------------------------
# Generated text is untrusted output: whatever a transcript, a title or a listener's history
# slipped past the prompt can come back in it. Before it is stored or served it must hold none
# of: a link or a domain name however disguised, an e-mail address or handle, a phone number, a
# request for credentials or payment, markup, or words addressed to a model or to the reader.


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


_CCTLD = """
    ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo br bs bt bw by
    bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg er es et eu fi
    fj fk fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in
    io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md
    me mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe
    pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sk sl sm sn so sr ss st
    su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va vc ve vg vi vn vu
    wf ws ye yt za zm zw
""".split()  # noqa: SIM905 (the country domains: ISO 3166 codes and .ac .eu .su .uk)
_RISKY_TLD = """
    com net org ru su top xyz info biz io co cn tk ml ga cf gq pw ws cc me ly online site club shop app
    win click link live vip icu buzz fun store website space tech pro cam rest bid loan
""".split()  # noqa: SIM905 (endings spammers favour: a domain even when spelled with spaces)
_NOT_A_LABEL = frozenset("the a an of and or this that one first early late big old new".split())  # noqa: SIM905
_DOTCOM_ERA = ("bubble", "boom", "era", "crash", "bust", "mania", "compan", "startup", "day", "year")
# a bare name.tld: any country ending, any longer one, punycode or a non-Latin one
_TLD = _any(*_CCTLD, "[a-z]{3,24}", r"xn--[\w-]+", r"[^\W\d_a-z]{2,}")
_DOMAIN = re.compile(rf"(?<![\w.@-])[\w-]+(?:\.[\w-]+)*\.({_TLD})(?![\w-])", re.IGNORECASE)
_ABBREVIATION = re.compile(r"[A-Z][a-z]{0,2}\.[A-Z][a-z]+")  # M.Sc, St.Louis, Dr.Who: not domains
_SPOKEN_DOT = re.compile(  # bee-prizes dot ru, bee-dance . top, bee-prizes. ru/win
    rf"(?<![\w-])([\w-]{{2,}})(?:\s+dot\s+({_any(*_RISKY_TLD)})"
    rf"|(?:\s+\.\s*|\.\s+(?=\S+/))((?-i:{_any(*_RISKY_TLD)})))\b(\s+\w+)?",
    re.IGNORECASE,
)
_PHONE_WORDS = r"\b(?:call|phone|dial|text|ring|tel|telephone|whatsapp|sms|fax|hotline)\b"

_CREDENTIAL = _any(  # asked for with a verb: "send your password", "enter the code"
    "passwords?", "pass ?codes?", "passphrases?", r"log-?in(?: details| credentials| info(?:rmation)?)?",
    "credentials", "user ?names?", "card (?:numbers?|details)", "cvv2?", "cvc", "security codes?",
    "(?:credit|debit|bank) cards?(?: numbers?| details| info(?:rmation)?)?",
    r"expir(?:y|ation) dates?", "pins?(?: codes?| numbers?)?",
    r"bank(?:ing)? (?:details|logins?|info(?:rmation)?|account(?: numbers?| details)?)",
    r"account (?:numbers?|details|info(?:rmation)?)", "routing numbers?", "sort codes?", "iban",
    "swift codes?", "social security numbers?", "ssn", "one-time (?:codes?|pass(?:words?|codes?))", "otp",
    "verification codes?", "2fa codes?", "(?:seed|recovery) phrases?", "private keys?",
    r"(?:crypto(?:currency)?|bitcoin|btc|eth(?:ereum)?) wallets?", r"wallet (?:address(?:es)?|keys?)",
)  # fmt: skip
_FINANCIAL = _any(  # asked for as "your ...", even without a verb
    "card (?:numbers?|details)", "(?:credit|debit|bank) cards? (?:numbers?|details)", "cvv2?", "cvc",
    "security codes?", "pin (?:codes?|numbers?)",
    r"bank(?:ing)? (?:details|logins?|info(?:rmation)?|account (?:numbers?|details))",
    r"account (?:numbers?|details|info(?:rmation)?)", "routing numbers?", "sort codes?", "iban",
    "social security numbers?", "ssn", "log-?in (?:details|credentials)", "verification codes?",
    "one-time (?:codes?|pass(?:words?|codes?))", "(?:seed|recovery) phrases?",
    r"(?:crypto(?:currency)?|bitcoin|btc|eth(?:ereum)?) wallets?",
)  # fmt: skip
_ASKED = _any(  # what a request sounds like: at the start of a sentence, or pressed for
    "^", r"[.!?:;,]\s*", r"\b(?:please|just|now|simply|then|must|need to|have to|should)\s+",
    r"\bto (?:claim|receive|unlock|get|win|enter)(?: it)?\s+",
)  # fmt: skip
_PAYMENT = _any(
    "money", "funds", "cash", "payments?", "fees?", "deposits?", r"[$€£]\s?\d",
    r"\d+\s?(?:dollars|euros|pounds|usd|eur|gbp)", "bitcoin", "btc", "eth(?:er)?", "usdt",
    r"crypto(?:currency)?",
)  # fmt: skip
_TO_US = _any(  # where a payment asked for goes, or what it buys
    "us", "me", "our", "my", "this", "the (?:host|show|team)", "an? agent", "unlock", "claim", "receive",
    "get", "win", "enter", "keep", "access", "activate", "release", "verify",
)  # fmt: skip


def _pattern(*alternatives: str) -> re.Pattern[str]:
    return re.compile(_any(*alternatives), re.IGNORECASE)


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("control", re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")),
    ("markup", _pattern(
        "</?[a-z!?/]", r"&(?:#\d+|#x[0-9a-f]+|[a-z]{2,8});",  # tags and entities
        r"\]\s*\(", r"!\[", "```", r"\{\{", r"\}\}", r"\$\{", "%3c", "%3e",  # markdown, templates, escapes
        r"\b(?:java|vb|live)script\s*:", r"\bdata\s*:\s*[a-z]+/[a-z]", r"\bon[a-z]{3,20}\s*=",
        r"\b(?:src|href)\s*=",
    )),
    ("link", _pattern(
        r"\b[a-z][a-z0-9+.-]{1,15}\s*(?::|\[:\]|\(:\))\s*(?://|\\\\)",  # scheme://
        r"\bh(?:tt|xx|\*\*)ps?\s*(?:\[:\]|\(:\)|:)", r"\bhxxps?\b", r"\bmailto\s*:",
        r"\bwww\d?\s*(?:\.|[\[({]\s*(?:\.|dot)|\s+dot\s)", r"\bxn--[a-z0-9]",
        r"[\[({<]\s*(?:\.|dot)\s*[\])}>]",  # bee-prizes[.]ru, (dot), {.}
        r"(?<!\b\w\s)\b\w(?:\s\w){2,}+\s*\.\s*\w\s\w\b",  # b e e . r u
        r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])",  # an IP address
    )),
    ("email", _pattern(
        r"\S@\S", r"(?<![\w@])@[a-z0-9_]{2,}", r"[\[({]\s*at\s*[\])}]",
        r"(?<![\w.+-])[\w.+-]++\s+at\s+[\w-]+\s+dot\s+[a-z]{2,}\b",
    )),
    ("phone", _pattern(
        rf"{_PHONE_WORDS}[^.!?\d]{{0,20}}\d{{3}}[ .-]\d{{4}}\b",  # call 555-0199
        r"\b(?:1[ .-])?8(?:00|33|44|55|66|77|88)-(?-i:[A-Z][A-Z0-9]{3,})",  # 1-800-PRIZES
        r"(?:\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b[\s,.-]*){7,}",  # spelled out
    )),
    ("credentials", _pattern(
        r"(?<!never )(?<!not )(?<!n't )\b(?:enter|send|share|give|provide|submit|confirm|verify|update|type"
        r"|text|e-?mail|dm|message|reply with|tell us|read out|post|forward|disclose|reveal|need your"
        rf"|require your)\b\W+(?:[\w'-]+\W+){{0,4}}?{_CREDENTIAL}\b",
        rf"\b(?:your|ur|yr)\s+(?:[\w'-]+\s+){{0,2}}?{_FINANCIAL}\b", r"\bcvv2?\b", r"\bcvc\b",
        r"\b(?:your|ur|bank|card|atm|debit|credit)\s+pins?\b", r"\bwallet address",
        r"\b(?:verify|confirm|validate|unlock|reactivate|restore)\s+(?:your|ur)\s+(?:[\w'-]+\s+)?"
        r"(?:account|identity|details|info(?:rmation)?|payment|billing|card|login|wallet)s?\b",
        r"\b(?:bc1[a-z0-9]{25,60}|0x[a-f0-9]{40})\b",  # bitcoin and ethereum addresses
    )),
    ("payment", _pattern(
        rf"{_ASKED}(?:wire|transfer|send|pay|deposit)\s+(?:\S+\s+){{0,3}}?{_PAYMENT}[^.!?]{{0,40}}?"
        rf"\b(?:to|for|into)\s+{_TO_US}\b",
        rf"{_ASKED}(?:buy|purchase|get|send)\s+(?:[\w'-]+\s+){{0,4}}?gift\s*cards?\b",
        r"\bgift\s*card\s+(?:codes?|numbers?|pins?)\b",
        r"\b(?:processing|release|handling|unlock(?:ing)?|activation|clearance) fee\b",
        r"\bclaim\s+(?:(?:your|ur|this|my)\s+)?(?:free\s+|exclusive\s+|cash\s+)?"
        r"(?:prize|reward|gift|winnings|bonus|voucher|payout|refund|money)s?\b",
        r"\byou(?:'ve| have)?\s+(?:just\s+)?(?:won|been (?:selected|chosen))\b", r"\bcongratulations,? you\b",
    )),
    ("instructions", _pattern(
        r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|the|your|my|previous|prior|above"
        r"|earlier|system|these|those|of|safety|every)\s+)*(?:instructions?|prompts?|directions)\b",
        r"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:above|before|else|previous(?:ly)?)\b",
        r"\bnew instructions\b", r"\bsystem (?:prompt|message|instructions?)\b", r"\bdeveloper mode\b",
        r"\bjailbreak", r"^(?:system|assistant|developer)\s*:",
        r"\b(?:as|i am|i'm) an? (?:ai|artificial intelligence|(?:large )?language model|llm|chatbot"
        r"|ai assistant)\b",
        r"\bclick (?:here|below|the link|this link|now)\b", r"\btap (?:here|the link)\b",
        r"\bfollow (?:this|the) link\b", r"\blinks? (?:below|above|in (?:the |my |our )?(?:bio|description))",
        r"\btell (?:the|every|each|all|any) (?:listeners?|users?|readers?)\b",
        r"\bin (?:every|each|all) (?:of (?:the|your) )?(?:reasons?|summar(?:y|ies)|answers?|responses?"
        r"|replies|outputs?|recommendations?|profiles?)\b",
        r"\b(?:always|you must) (?:mention|append|output|print)\b", r"\b(?:respond|reply|answer) only with\b",
    )),
]  # fmt: skip

_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"))
_DOTS = dict.fromkeys(map(ord, "\u3002\uff0e\uff61\u2024\u00b7\u2022\u2219\u22c5\u30fb"), ".")
_NUMBER_RUN = re.compile(r"(?<![\w.])(\+\s?)?\(?\d[\d().\-/ ]*\d\)?")
_PHONE_WORD = re.compile(rf"{_PHONE_WORDS}\W*$", re.IGNORECASE)


def _normalized(text: str) -> str:
    """`text` as it reads: compatibility forms folded (full-width letters, look-alike dots),
    invisible characters dropped, whitespace collapsed to single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_DOTS).split())


def _domain(text: str) -> bool:
    for match in _DOMAIN.finditer(text):
        tld = match.group(1).lower()
        abbreviation = _ABBREVIATION.fullmatch(match.group(0)) and tld not in _RISKY_TLD
        if not abbreviation or text[match.end() : match.end() + 1] == "/":
            return True
    for match in _SPOKEN_DOT.finditer(text):
        label, tld = match.group(1).lower(), (match.group(2) or match.group(3)).lower()
        after = (match.group(4) or "").strip().lower()
        if label not in _NOT_A_LABEL and not (tld == "com" and after.startswith(_DOTCOM_ERA)):
            return True
    return False


def _phone(text: str) -> bool:
    """A phone number: international (+...), with an area code in brackets, North American
    (3-3-4), local from a leading 0, four groups or more, one run of 9 digits or more, or any
    7 digits after a word such as "call"; dates, years, prices and thousands are not."""
    for match in _NUMBER_RUN.finditer(text):
        run = match.group(0).strip()
        groups = re.findall(r"\d+", run)
        digits = sum(map(len, groups))
        if digits < 7 or re.fullmatch(r"\d+\.\d+", run):
            continue  # too short for a phone number, or a decimal
        lengths = tuple(map(len, groups))
        if match.group(1) or re.search(r"\(\d{2,5}\)", run) or max(lengths) >= 9 or lengths[-3:] == (3, 3, 4):
            return True
        if len(groups) == 3 and (lengths in {(2, 2, 4), (4, 2, 2), (1, 2, 4), (2, 1, 4), (1, 1, 4)}):
            continue  # a date
        if all(n == 4 and 1000 <= int(g) <= 2199 for g, n in zip(groups, lengths, strict=True)):
            continue  # years
        if len(groups) > 1 and lengths[0] <= 3 and set(lengths[1:]) == {3} and not groups[0].startswith("0"):
            if not _PHONE_WORD.search(text[: match.start()]):
                continue  # a number with thousands separators
            return True
        if (groups[0].startswith("0") and lengths[0] >= 2 and digits >= 8) or (
            len(groups) >= 4 and digits >= 9
        ):
            return True
        if _PHONE_WORD.search(text[: match.start()]):
            return True
    return False


def refused(text: str) -> str | None:
    """Why generated text may not be stored or shown (`control`, `markup`, `link`, `email`,
    `phone`, `credentials`, `payment` or `instructions`), or None when it may.

    Refused: links and domain names however disguised (`http`, `hxxp`, `www`, `[.]`, `(dot)`,
    ` dot `, a bare `name.tld` for any country or generic ending, punycode, an IP address),
    e-mail addresses and handles, phone numbers in international and local formats, requests
    for credentials or payment (card number, CVV, password, PIN, bank or account details,
    wiring money, gift cards, crypto wallets, "verify your account", "claim your prize"), markup
    (HTML tags and entities, markdown links and images, `javascript:`, event handlers) and words
    addressed to a model or to the reader ("ignore previous instructions", "as an AI", "click
    here", "tell the listener"). Years, prices, percentages, times, decimals and versions,
    abbreviations (U.S., Dr., e.g., M.Sc.), scores and dates pass; so do company names without a
    domain. Known refusals of the harmless: a domain spelled out in passing ("a name like example
    dot com"), advice that reads as a request ("enter your PIN", "ask you to share your password"),
    `ASP.NET`, file names such as `main.py`, IP addresses, ISBNs and digit runs of 9 or more (read
    as phone numbers)."""
    text = _normalized(text)
    for name, pattern in _PATTERNS:
        if pattern.search(text):
            return name
    if _domain(text):
        return "link"
    if _phone(text):
        return "phone"
    return None


def presentable(text: str, max_chars: int, min_chars: int = MIN_GENERATED_CHARS) -> bool:
    """Whether generated text may be stored and shown: `min_chars` to `max_chars` long and not
    `refused`. The one check of every generated summary, reason, interest profile and label."""
    return min_chars <= len(text) <= max_chars and refused(text) is None


def clip(text: str, limit: int) -> str:
    """`text` on one line, cut at a word to at most `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each episode few for from further
    get got had has have having he her here hers him his how i if in into is it its itself just
    like me more most my no nor not now of off on once only or other our ours out over own podcast
    really same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why will
    with would you your yours today going know think talk week show across along around among every
    still within without something things tags
    """.split()  # noqa: SIM905 (a list of words reads best as words)
)


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning (lower case, stop words left out), in order."""
    return [w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if w not in STOPWORDS]


def sentences(text: str) -> list[str]:
    """The sentences (and lines) of `text`, whitespace collapsed."""
    parts = re.split(r"(?<=[.!?])\s+|\s*[\n;]\s*", text.strip())
    return [" ".join(p.split()) for p in parts if p.strip()]


def extractive_summary(text: str, max_sentences: int = 2) -> str:
    """The sentences whose words are most frequent in the text, in their original order;
    sentences the check refuses are never chosen."""
    fit = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s.strip() and refused(s) is None]
    if len(fit) <= max_sentences:
        chosen = list(range(len(fit)))
    else:
        frequency = Counter(content_words(text))
        top = max(frequency.values(), default=1)

        def score(sentence: str) -> float:
            words = content_words(sentence)
            return sum(frequency[w] / top for w in words) / (len(words) ** 0.5 or 1)

        best = sorted(range(len(fit)), key=lambda i: score(fit[i]), reverse=True)
        chosen = sorted(best[:max_sentences])
    summary = clip(" ".join(fit[i] for i in chosen), SUMMARY_MAX_CHARS)
    if refused(summary) is None:
        return summary
    return clip(fit[chosen[0]], SUMMARY_MAX_CHARS)  # two fit sentences that read unfit together


def keyword_profile(history: str, liked: list[str]) -> str:
    """The offline interest profile: the most frequent content words of the sentences of the
    history and of the liked titles that the check lets through, and those titles. What the check
    refuses (a domain, a phone number, words addressed to a model) is left out whole, so nothing
    of it comes through: the profile passes the check, or is empty when nothing is left."""
    kept = [s for s in sentences(history) if refused(s) is None]
    titles = [t for t in liked if refused(t) is None]
    keywords = [w for w, _ in Counter(content_words(" ".join([*kept, *titles]))).most_common(8)]
    enjoys = f"Enjoys {', '.join(keywords)}." if keywords else ""
    engaged = "Engaged with: " + "; ".join(titles[:6]) + "." if titles else ""
    for profile in (clip(" ".join(p for p in (enjoys, engaged) if p), PROFILE_MAX_CHARS), enjoys):
        if refused(profile) is None:
            return profile
    return ""


def topic_label(texts: list[str]) -> str:
    """The offline label of a group of episode texts: the words most of them share (at least two
    and half of them), up to three, the most shared first; "mixed" when none, or when what they
    share is refused by the check."""
    shared = Counter(word for text in texts for word in dict.fromkeys(content_words(text)))
    common = [w for w, n in shared.most_common() if n >= max(2, len(texts) / 2)][:3]
    label = " & ".join(common)
    return label if common and refused(label) is None else "mixed"
