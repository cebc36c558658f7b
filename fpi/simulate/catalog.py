"""The simulated world: domains, intents, slots, entity catalogues and sound-alike words.

The catalogue is fixed (the same for every seed): seeds vary the traffic, not the world.
Entities that share a spoken name (a book, a film and an audiobook called "dune"; two
towns called "springfield") and names that sound alike ("jon" / "john" / "don") are what
makes entity resolution and speech recognition fail in realistic ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np

#: Seed of the fixed world (catalogue filler and popularity); traffic seeds are separate.
WORLD_SEED = 20261102


@dataclass(frozen=True, slots=True)
class Entity:
    """One catalogue entry. `spoken` is how users say it; homonyms share `spoken`."""

    id: str
    kind: str
    name: str
    spoken: str
    qualifier: str  # words a user adds to say which one they mean ("missouri", "by adele")
    popularity: float  # Zipf weight, normalised within its kind
    available: bool = True  # False: the service genuinely has no such content


@dataclass(frozen=True, slots=True)
class Intent:
    """A request type: its wordings, slots, the handler that serves it and what it answers."""

    domain: str
    name: str
    templates: tuple[str, ...]
    handler: str
    action: str
    response: str  # str.format over slot display values
    slots: Mapping[str, str] = field(
        default_factory=dict
    )  # slot name -> entity kind or literal pool
    supported: bool = True
    needs_screen: bool = False
    weight: float = 1.0  # how often users ask for it within its domain
    ambiguity: float = 0.0  # extra NLU difficulty: wordings shared with other domains


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FUNCTION_WORDS = frozenset(
    _words("a an the to for of on in at my me some please by with and it is what's what up")
)
FILLERS = ("the", "a", "uh", "um", "and", "to")

#: Sound-alike clusters: speech recognition substitutes within a cluster.
SOUND_ALIKES: tuple[tuple[str, ...], ...] = (
    ("play", "pay", "plate", "clay"),
    ("call", "cool", "fall", "paul"),
    ("weather", "whether", "feather"),
    ("timer", "time", "tiger"),
    ("light", "lights", "night", "like"),
    ("lamp", "lamb", "lamps"),
    ("on", "off", "and"),
    ("four", "for", "floor"),
    ("two", "to", "too"),
    ("eight", "ate"),
    ("read", "red", "reed"),
    ("dune", "june", "doom"),
    ("jon", "john", "don", "joan"),
    ("ann", "anne", "anna", "and"),
    ("mark", "marc", "mike"),
    ("sean", "shawn", "shaun"),
    ("katie", "cady", "kate"),
    ("lee", "leigh", "leah"),
    ("claire", "clare", "clear"),
    ("eric", "erik", "derek"),
    ("austin", "boston"),
    ("paris", "harris"),
    ("perth", "earth"),
    ("hello", "halo", "hollow"),
    ("stay", "stray", "say"),
    ("frozen", "chosen"),
    ("milk", "mill"),
    ("it", "at", "hit"),
    ("set", "sit", "said"),
    ("turn", "tan", "term"),
    ("text", "next", "tex"),
    ("add", "at", "ad"),
    ("list", "least", "lists"),
    ("minutes", "minute", "midnight"),
    ("seven", "eleven"),
    ("five", "nine", "fine"),
    ("ten", "then", "tin"),
    ("wake", "make", "bake"),
    ("kitchen", "chicken"),
    ("bedroom", "bathroom"),
    ("fan", "van", "fans"),
    ("heater", "heat", "theater"),
    ("harry", "hairy", "larry"),
    ("potter", "patter", "porter"),
    ("hobbit", "habit", "rabbit"),
    ("martian", "martin", "marshall"),
    ("women", "woman"),
    ("believer", "believe", "deliver"),
    ("dynamite", "dine might"),
    ("springfield", "spring field"),
    ("portland", "port land"),
    ("richmond", "rich man"),
    ("columbus", "colombo"),
    ("kingston", "kings town"),
    ("rangers", "strangers", "changers"),
    ("giants", "giant"),
    ("pasta", "past a", "pastor"),
    ("curry", "hurry", "carry"),
    ("serial", "cereal"),
    ("daily", "daly"),
)
SOUND_ALIKE: dict[str, tuple[str, ...]] = {}
for _cluster in SOUND_ALIKES:
    for _word in _cluster:
        SOUND_ALIKE[_word] = tuple(w for w in _cluster if w != _word)

# ---- entity catalogues -----------------------------------------------------------------

# (kind, name, qualifier, available) — hand-written confusable heads of each catalogue.
_HEADS: dict[str, tuple[tuple[str, str], ...]] = {
    "song": (
        ("Hello", "by adele"),
        ("Hello", "by lionel richie"),
        ("Halo", "by beyonce"),
        ("Hallelujah", "by leonard cohen"),
        ("Hallelujah", "by jeff buckley"),
        ("Stay", "by rihanna"),
        ("Stay", "by the kid laroi"),
        ("Dynamite", "by bts"),
        ("Dynamite", "by taio cruz"),
        ("Believer", "by imagine dragons"),
        ("Believe", "by cher"),
        ("Yesterday", "by the beatles"),
        ("Frozen", "by madonna"),
        ("Let It Go", "from frozen"),
        ("Dune", "the soundtrack"),
        ("Harry Potter", "the soundtrack"),
        ("Little Women", "the soundtrack"),
        ("Perfect", "by ed sheeran"),
        ("Perfect", "by one direction"),
        ("Heroes", "by david bowie"),
    ),
    "film": (
        ("Dune", "the film"),
        ("Dune", "the nineteen eighty four film"),
        ("Harry Potter and the Goblet of Fire", "the film"),
        ("Harry Potter and the Chamber of Secrets", "the film"),
        ("The Hobbit", "the film"),
        ("Little Women", "the film"),
        ("The Martian", "the film"),
        ("Gone Girl", "the film"),
        ("Frozen", "the film"),
        ("Frozen", "the second one"),
        ("It", "the film"),
        ("Heroes", "the series"),
    ),
    "audiobook": (
        ("Dune", "the audiobook"),
        ("Harry Potter and the Goblet of Fire", "the audiobook"),
        ("Harry Potter and the Chamber of Secrets", "the audiobook"),
        ("The Hobbit", "the audiobook"),
        ("Little Women", "the audiobook"),
        ("The Martian", "the audiobook"),
        ("Gone Girl", "the audiobook"),
        ("It", "the audiobook"),
        ("Becoming", "by michelle obama"),
        ("Educated", "by tara westover"),
    ),
    "book": (
        ("Dune", "the book"),
        ("Harry Potter and the Goblet of Fire", "the book"),
        ("The Hobbit", "the book"),
        ("Little Women", "the book"),
        ("The Martian", "the book"),
        ("Gone Girl", "the book"),
        ("Becoming", "the book"),
    ),
    "town": (
        ("Springfield", "illinois"),
        ("Springfield", "missouri"),
        ("Springfield", "massachusetts"),
        ("Portland", "oregon"),
        ("Portland", "maine"),
        ("Cambridge", "england"),
        ("Cambridge", "massachusetts"),
        ("Paris", "france"),
        ("Paris", "texas"),
        ("London", "england"),
        ("London", "ontario"),
        ("Birmingham", "england"),
        ("Birmingham", "alabama"),
        ("Richmond", "virginia"),
        ("Richmond", "london"),
        ("Columbus", "ohio"),
        ("Columbus", "georgia"),
        ("Kingston", "jamaica"),
        ("Kingston", "ontario"),
        ("Perth", "australia"),
        ("Perth", "scotland"),
        ("Hyderabad", "india"),
        ("Hyderabad", "pakistan"),
        ("Austin", "texas"),
        ("Boston", "massachusetts"),
        ("Delhi", "india"),
        ("Mumbai", "india"),
        ("Sydney", "australia"),
        ("Toronto", "canada"),
        ("Manchester", "england"),
    ),
    "contact": tuple(
        (n, s)
        for n, s in (
            ("Jon", "smith"),
            ("John", "baker"),
            ("Don", "miller"),
            ("Joan", "taylor"),
            ("Ann", "walker"),
            ("Anne", "harris"),
            ("Anna", "lopez"),
            ("Mark", "evans"),
            ("Marc", "dubois"),
            ("Mike", "chen"),
            ("Sean", "murphy"),
            ("Shawn", "price"),
            ("Katie", "brooks"),
            ("Kate", "wilson"),
            ("Lee", "wong"),
            ("Leah", "cohen"),
            ("Claire", "martin"),
            ("Clare", "jones"),
            ("Eric", "nguyen"),
            ("Erik", "larsen"),
            ("Mom", "at home"),
            ("Dad", "mobile"),
            ("Priya", "sharma"),
            ("Raj", "patel"),
            ("Olivia", "green"),
            ("Sam", "work"),
        )
    ),
    "appliance": (
        ("Kitchen Light", "in the kitchen"),
        ("Kitchen Lights", "the ceiling ones"),
        ("Bedroom Lamp", "by the bed"),
        ("Bathroom Light", "in the bathroom"),
        ("Living Room Lamp", "in the living room"),
        ("Hall Light", "in the hall"),
        ("Fan", "in the bedroom"),
        ("Heater", "in the office"),
        ("Garage Door", "the main one"),
        ("Porch Light", "outside"),
    ),
    "product": (
        ("Milk", "whole"),
        ("Oat Milk", "the oat one"),
        ("Almond Milk", "the almond one"),
        ("Eggs", "a dozen"),
        ("Bread", "sliced"),
        ("Coffee", "ground"),
        ("Bananas", "a bunch"),
        ("Paper Towels", "the big pack"),
        ("Cereal", "the usual"),
        ("Rice", "basmati"),
    ),
    "person": (
        ("Barack Obama", "the president"),
        ("Michelle Obama", "the author"),
        ("Taylor Swift", "the singer"),
        ("Taylor Swift", "the musician"),
        ("Michael Jordan", "the basketball player"),
        ("Michael Jordan", "the professor"),
        ("Serena Williams", "the tennis player"),
        ("Albert Einstein", "the physicist"),
        ("Lionel Messi", "the footballer"),
        ("Virat Kohli", "the cricketer"),
    ),
    # ---- domains that only appear in the `newdomain` scenario ----
    "dish": (
        ("Pasta Carbonara", "the roman one"),
        ("Chicken Curry", "the quick one"),
        ("Curry", "the vegetable one"),
        ("Pancakes", "fluffy"),
        ("Banana Bread", "the easy one"),
        ("Lasagna", "the classic one"),
        ("Dal", "yellow"),
        ("Biryani", "hyderabadi"),
    ),
    "team": (
        ("Rangers", "new york"),
        ("Rangers", "texas"),
        ("Rangers", "glasgow"),
        ("Giants", "new york"),
        ("Giants", "san francisco"),
        ("Cardinals", "st louis"),
        ("Cardinals", "arizona"),
        ("Kings", "los angeles"),
        ("Kings", "sacramento"),
        ("Panthers", "carolina"),
        ("Panthers", "florida"),
        ("Arsenal", "the football club"),
    ),
    "podcast": (
        ("The Daily", "from the times"),
        ("Daily", "the news one"),
        ("Serial", "season one"),
        ("Radiolab", "the science one"),
        ("Hardcore History", "by dan carlin"),
        ("The Journal", "the business one"),
    ),
}

# Word lists that make the long tail of each catalogue (fixed, never random per seed).
_ADJECTIVES = _words(
    "blue golden silent broken electric wild velvet lonely crimson neon hidden northern "
    "summer midnight paper silver burning gentle distant little"
)
_NOUNS = _words(
    "horizon river train garden heart city ocean dream fire road light rain letter shadow "
    "mountain window season island forest story"
)
_TAIL_SIZES = {"song": 220, "film": 120, "audiobook": 90, "book": 60, "podcast": 30}
_TOWN_TAIL = _words(
    "leeds bristol glasgow dublin denver seattle chicago houston phoenix dallas miami "
    "atlanta nashville chennai pune kolkata bangalore melbourne brisbane auckland "
    "vancouver ottawa calgary cardiff oxford york bath reading bedford"
)

#: Share of each kind's tail that the service genuinely does not have.
_UNAVAILABLE_SHARE = {"song": 0.08, "film": 0.12, "audiobook": 0.12, "book": 0.1, "podcast": 0.1}


def _tail_names(kind: str, rng: np.random.Generator) -> list[str]:
    if kind == "town":
        return [t.title() for t in _TOWN_TAIL]
    size = _TAIL_SIZES.get(kind, 0)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < size:
        a = _ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]
        n = _NOUNS[int(rng.integers(len(_NOUNS)))]
        name = f"{a.title()} {n.title()}"
        if rng.random() < 0.3:
            name = f"The {name}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _build_catalogue() -> dict[str, tuple[Entity, ...]]:
    rng = np.random.default_rng(WORLD_SEED)
    catalogue: dict[str, tuple[Entity, ...]] = {}
    for kind, heads in _HEADS.items():
        rows = [(name, qualifier, True) for name, qualifier in heads]
        unavailable = _UNAVAILABLE_SHARE.get(kind, 0.0)
        rows += [(name, "", bool(rng.random() >= unavailable)) for name in _tail_names(kind, rng)]
        # Zipf popularity over a shuffled rank, so homonyms differ in popularity.
        ranks = rng.permutation(len(rows)) + 1
        weights = 1.0 / ranks**1.1
        weights /= weights.sum()
        catalogue[kind] = tuple(
            Entity(
                id=f"{kind}-{i:04d}",
                kind=kind,
                name=name,
                spoken=name.lower(),
                qualifier=qualifier,
                popularity=float(w),
                available=available,
            )
            for i, ((name, qualifier, available), w) in enumerate(zip(rows, weights, strict=True))
        )
    return catalogue


CATALOGUE: dict[str, tuple[Entity, ...]] = _build_catalogue()
#: kind -> spoken name -> every entity of that kind said that way (homonyms).
HOMONYMS: dict[str, dict[str, tuple[Entity, ...]]] = {}
for _kind, _entities in CATALOGUE.items():
    _groups: dict[str, list[Entity]] = {}
    for _e in _entities:
        _groups.setdefault(_e.spoken, []).append(_e)
    HOMONYMS[_kind] = {k: tuple(v) for k, v in _groups.items()}
#: Spoken name -> the kinds that have it ("dune": song, film, audiobook, book), in catalogue
#: order (a tuple, not a set: iteration order must not depend on string hashing).
CROSS_KIND: dict[str, tuple[str, ...]] = {}
for _kind, _groups2 in HOMONYMS.items():
    for _spoken in _groups2:
        CROSS_KIND[_spoken] = (*CROSS_KIND.get(_spoken, ()), _kind)

LITERALS: dict[str, tuple[str, ...]] = {
    "detail": ("phone number", "address", "opening hours", "price", "postcode", "rating"),
    "duration": (
        "five minutes",
        "ten minutes",
        "twenty minutes",
        "thirty seconds",
        "an hour",
        "two minutes",
        "fifteen minutes",
        "eight minutes",
    ),
    "clock": ("seven am", "six thirty", "eight fifteen", "five am", "seven thirty", "nine pm"),
    "temperature": ("twenty degrees", "seventy degrees", "twenty two degrees", "sixty eight"),
    "message": ("i'm on my way", "running late", "call me back", "dinner is ready", "love you"),
    "topic": ("the capital of france", "a black hole", "the time in tokyo", "a leap year"),
}

# ---- intents ----------------------------------------------------------------------------


def _i(domain: str, name: str, templates: str, handler: str, action: str, response: str, **kw):
    return Intent(domain, name, tuple(templates.split(" | ")), handler, action, response, **kw)


BASE_INTENTS: tuple[Intent, ...] = (
    _i(
        "Music",
        "PlayMusicIntent",
        "play {song} | play {song} please | put on {song} | play the song {song}",
        "MusicSkill",
        "PlaySong",
        "Playing {song}.",
        slots={"song": "song"},
        weight=5.0,
        ambiguity=0.4,
    ),
    _i(
        "Music",
        "PauseIntent",
        "pause | pause the music | stop the music",
        "MusicSkill",
        "Pause",
        "",
        weight=1.5,
    ),
    _i(
        "Music",
        "NextIntent",
        "next song | skip | skip this song | next",
        "MusicSkill",
        "NextTrack",
        "",
        weight=1.5,
    ),
    _i(
        "Video",
        "PlayVideoIntent",
        "play {film} | watch {film} | put on {film} | show me {film}",
        "VideoSkill",
        "PlayVideo",
        "Here's {film}.",
        slots={"film": "film"},
        needs_screen=True,
        weight=3.0,
        ambiguity=0.6,
    ),
    _i(
        "Books",
        "PlayAudiobookIntent",
        "read {audiobook} | play the audiobook {audiobook} | "
        "play {audiobook} | continue {audiobook}",
        "AudibleSkill",
        "PlayAudiobook",
        "Resuming {audiobook}.",
        slots={"audiobook": "audiobook"},
        weight=2.0,
        ambiguity=0.8,
    ),
    _i(
        "Books",
        "ReadBookIntent",
        "open the book {book} | read the book {book} | open {book} on kindle",
        "KindleSkill",
        "OpenBook",
        "Opening {book}.",
        slots={"book": "book"},
        needs_screen=True,
        weight=0.7,
        ambiguity=0.5,
    ),
    _i(
        "Weather",
        "GetWeatherIntent",
        "what's the weather in {town} | weather for {town} | "
        "what's the weather like in {town} | will it rain in {town}",
        "WeatherSkill",
        "Forecast",
        "In {town} it's 14 degrees and cloudy.",
        slots={"town": "town"},
        weight=3.0,
    ),
    _i(
        "Weather",
        "LocalWeatherIntent",
        "what's the weather | will it rain today | what's the weather like",
        "WeatherSkill",
        "Forecast",
        "Right now it's 14 degrees and cloudy.",
        weight=3.0,
    ),
    _i(
        "Timers",
        "SetTimerIntent",
        "set a timer for {duration} | timer for {duration} | set a {duration} timer",
        "TimerSkill",
        "StartTimer",
        "Timer set for {duration}.",
        slots={"duration": "duration"},
        weight=3.0,
    ),
    _i(
        "Timers",
        "SetAlarmIntent",
        "wake me up at {clock} | set an alarm for {clock} | alarm at {clock}",
        "AlarmSkill",
        "SetAlarm",
        "Alarm set for {clock}.",
        slots={"clock": "clock"},
        weight=1.5,
    ),
    _i(
        "SmartHome",
        "TurnOnIntent",
        "turn on the {appliance} | switch on the {appliance} | {appliance} on",
        "SmartHomeSkill",
        "TurnOn",
        "OK.",
        slots={"appliance": "appliance"},
        weight=3.0,
    ),
    _i(
        "SmartHome",
        "TurnOffIntent",
        "turn off the {appliance} | switch off the {appliance} | {appliance} off",
        "SmartHomeSkill",
        "TurnOff",
        "OK.",
        slots={"appliance": "appliance"},
        weight=3.0,
    ),
    _i(
        "SmartHome",
        "SetTemperatureIntent",
        "set the heating to {temperature} | set the thermostat to {temperature}",
        "SmartHomeSkill",
        "SetTemperature",
        "Setting the temperature to {temperature}.",
        slots={"temperature": "temperature"},
    ),
    _i(
        "Communication",
        "CallIntent",
        "call {contact} | ring {contact} | phone {contact}",
        "CallingSkill",
        "StartCall",
        "Calling {contact}.",
        slots={"contact": "contact"},
        weight=2.0,
    ),
    _i(
        "Communication",
        "SendMessageIntent",
        "text {contact} {message} | "
        "send a message to {contact} saying {message} | tell {contact} {message}",
        "MessagingSkill",
        "SendMessage",
        "Message sent to {contact}.",
        slots={"contact": "contact", "message": "message"},
        weight=1.2,
        ambiguity=0.3,
    ),
    _i(
        "Shopping",
        "AddToListIntent",
        "add {product} to my shopping list | put {product} on the list | add {product}",
        "ListSkill",
        "AddItem",
        "I've added {product} to your shopping list.",
        slots={"product": "product"},
        weight=2.0,
    ),
    _i(
        "Shopping",
        "BuyIntent",
        "order {product} | buy {product} | reorder {product}",
        "ShoppingSkill",
        "PlaceOrder",
        "Your order for {product} is placed.",
        slots={"product": "product"},
        weight=0.7,
        ambiguity=0.3,
    ),
    _i(
        "Knowledge",
        "PersonInfoIntent",
        "who is {person} | how old is {person} | tell me about {person}",
        "KnowledgeSkill",
        "Answer",
        "{person} is a well known public figure.",
        slots={"person": "person"},
        weight=1.5,
    ),
    _i(
        "Knowledge",
        "QuestionIntent",
        "what is {topic} | tell me {topic} | explain {topic}",
        "KnowledgeSkill",
        "Answer",
        "Here's what I found about {topic}.",
        slots={"topic": "topic"},
        weight=1.5,
    ),
    _i(
        "Knowledge",
        "TimeIntent",
        "what time is it | what's the time | what's the date",
        "ClockSkill",
        "TellTime",
        "It's ten past nine.",
        weight=1.5,
    ),
    # Requests the assistant cannot do by design: answered with a clear, correct "no".
    _i(
        "Travel",
        "BookFlightIntent",
        "book a flight to {town} | find me flights to {town}",
        "Unsupported",
        "Decline",
        "Sorry, I can't book flights yet.",
        slots={"town": "town"},
        supported=False,
        weight=0.5,
    ),
    _i(
        "Food",
        "OrderFoodIntent",
        "order a pizza | order takeaway | get me a burger",
        "Unsupported",
        "Decline",
        "Sorry, I can't order food yet.",
        supported=False,
        weight=0.5,
    ),
    _i(
        "Finance",
        "CreditScoreIntent",
        "what's my credit score | check my bank balance",
        "Unsupported",
        "Decline",
        "Sorry, I can't access your bank accounts.",
        supported=False,
        weight=0.4,
    ),
)

#: The intent a user says to interrupt an unwanted response (after a false wake or a wrong song).
STOP_INTENT = _i(
    "Global",
    "StopIntent",
    "stop | cancel | never mind | shut up | be quiet",
    "SystemSkill",
    "Stop",
    "",
    weight=0.0,
)

NEW_INTENTS: tuple[Intent, ...] = (
    _i(
        "Cooking",
        "GetRecipeIntent",
        "how do i make {dish} | recipe for {dish} | show me a recipe for {dish}",
        "RecipeSkill",
        "ShowRecipe",
        "Here's a recipe for {dish}.",
        slots={"dish": "dish"},
        weight=3.0,
        ambiguity=0.4,
    ),
    _i(
        "Cooking",
        "ConvertUnitsIntent",
        "how many grams in a cup | how many ounces in a pound",
        "RecipeSkill",
        "Convert",
        "There are about 120 grams in a cup.",
        weight=1.0,
    ),
    _i(
        "Sports",
        "GetScoreIntent",
        "what was the score of the {team} game | did the {team} win | {team} score",
        "SportsSkill",
        "Score",
        "The {team} won 3 to 2.",
        slots={"team": "team"},
        weight=3.0,
        ambiguity=0.3,
    ),
    _i(
        "Podcasts",
        "PlayPodcastIntent",
        "play the latest episode of {podcast} | play the podcast {podcast} | play {podcast}",
        "PodcastSkill",
        "PlayEpisode",
        "Here's the latest episode of {podcast}.",
        slots={"podcast": "podcast"},
        weight=3.0,
        ambiguity=0.7,
    ),
)
NEW_DOMAINS: frozenset[str] = frozenset(i.domain for i in NEW_INTENTS)
#: How often people use each base domain (new domains get a scenario-given share).
DOMAIN_WEIGHTS: dict[str, float] = {
    "Music": 5.0,
    "Video": 2.0,
    "Books": 1.5,
    "Weather": 3.0,
    "Timers": 3.0,
    "SmartHome": 3.0,
    "Communication": 1.5,
    "Shopping": 1.5,
    "Knowledge": 2.5,
    "Travel": 0.3,
    "Food": 0.3,
    "Finance": 0.2,
}

#: What users say to close a dialogue that went well ("thank you", "ok"): nothing to do but
#: acknowledge it.
THANKS_INTENT = _i(
    "Global",
    "ThanksIntent",
    "thank you | thanks | ok thank you | okay thanks | great thanks | cool | ok | thank you bye"
    " | goodbye | good bye | bye | ok goodbye | thank you goodbye",
    "SystemSkill",
    "Acknowledge",
    "You're welcome.",
    weight=0.0,
)
#: A hesitation heard by an open microphone before the request itself ("uh", "um"): the right
#: answer is to prompt again.
HESITATION_INTENT = _i(
    "Global",
    "HesitationIntent",
    "uh | um | hmm | er | so | and | well | uh so",
    "SystemSkill",
    "Reprompt",
    "Sorry, what was that?",
    weight=0.0,
)
#: Words some users wrap a request in ("could you please ..."), as on a telephone line or a
#: chat window, where people speak in sentences rather than commands.
CARRIER_OPENERS = ("could you please", "can you", "i would like you to", "i want you to",
                   "hey could you", "would you", "i need you to", "please")  # fmt: skip
CARRIER_CLOSERS = ("please", "for me", "thank you", "right now", "if you can")

#: A question about a detail of what the last answer named ("what's their phone number?").
DETAIL_INTENT = _i(
    "Global",
    "AskDetailIntent",
    "what is the {detail} | the {detail} | what's its {detail} | can i have the {detail}"
    " | {detail} | and the {detail}",
    "InfoSkill",
    "GiveDetail",
    "Here's the {detail}.",
    slots={"detail": "detail"},
    weight=0.0,
)

#: The user's answer to a confirmation question ("Did you say ...?") that got it right: the
#: system goes on to do what was asked (the response is that request's).
AFFIRM_INTENT = _i(
    "Global",
    "AffirmIntent",
    "yes | yeah | yes please | right | that's right | correct | yep",
    "SystemSkill",
    "Proceed",
    "Okay.",
    weight=0.0,
)
#: The answer to a confirmation question that got it wrong: the system asks again.
NEGATE_INTENT = _i(
    "Global",
    "NegateIntent",
    "no | nope | no no | no that's wrong | that's not right | wrong",
    "SystemSkill",
    "Reprompt",
    "Sorry about that. What would you like?",
    weight=0.0,
)

ALL_INTENTS: tuple[Intent, ...] = (
    *BASE_INTENTS,
    STOP_INTENT,
    THANKS_INTENT,
    HESITATION_INTENT,
    AFFIRM_INTENT,
    NEGATE_INTENT,
    DETAIL_INTENT,
    *NEW_INTENTS,
)
INTENT_BY_NAME: dict[str, Intent] = {i.name: i for i in ALL_INTENTS}

#: For a wording shared across domains ("play {title}"), the intents it could mean.
PLAY_INTENTS: dict[str, str] = {
    "song": "PlayMusicIntent",
    "film": "PlayVideoIntent",
    "audiobook": "PlayAudiobookIntent",
    "book": "ReadBookIntent",
    "podcast": "PlayPodcastIntent",
}
#: Intent pairs NLU confuses on correct text (besides cross-domain "play" titles).
NLU_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "SetTimerIntent": ("SetAlarmIntent",),
    "SetAlarmIntent": ("SetTimerIntent",),
    "CallIntent": ("SendMessageIntent",),
    "SendMessageIntent": ("CallIntent", "QuestionIntent"),
    "AddToListIntent": ("BuyIntent",),
    "BuyIntent": ("AddToListIntent",),
    "TurnOnIntent": ("TurnOffIntent",),
    "TurnOffIntent": ("TurnOnIntent",),
    "GetWeatherIntent": ("LocalWeatherIntent", "BookFlightIntent"),
    "LocalWeatherIntent": ("GetWeatherIntent", "TimeIntent"),
    "PersonInfoIntent": ("QuestionIntent", "PlayMusicIntent"),
    "QuestionIntent": ("PersonInfoIntent",),
    "TimeIntent": ("LocalWeatherIntent", "SetAlarmIntent"),
    "PauseIntent": ("StopIntent", "NextIntent"),
    "NextIntent": ("PauseIntent",),
    "SetTemperatureIntent": ("TurnOnIntent",),
    "GetRecipeIntent": ("QuestionIntent", "AddToListIntent"),
    "ConvertUnitsIntent": ("QuestionIntent",),
    "GetScoreIntent": ("PersonInfoIntent", "QuestionIntent"),
    "PlayPodcastIntent": ("PlayMusicIntent", "PlayAudiobookIntent"),
}

#: What the TV or a conversation in the room says when the assistant wakes by mistake.
BACKGROUND_SPEECH: tuple[str, ...] = (
    "and then she said we should just leave it",
    "no i think it was on tuesday",
    "coming up next on channel five",
    "play the new season tonight only on",
    "did you call your mother",
    "it's going to rain all weekend apparently",
    "turn it down a bit",
    "what time is the game",
    "i told him about the kitchen",
    "alexander the great conquered",
    "let's see what else is on",
    "the weather in the north will be",
    "hey can you pass me that",
    "i don't know what she wants",
    "stay tuned for more after the break",
    "order now and get a second one free",
    "yeah",
    "okay",
    "hmm",
    "so",
)
#: What a recogniser makes of a noise burst (a cough, a door, line noise): a short word or two.
NOISE_HEARD_AS: tuple[str, ...] = (
    "yes",
    "no",
    "yeah",
    "okay",
    "the",
    "and",
    "hello",
    "right",
    "hi",
    "what",
    "oh no",
    "yes please",
    "thank you",
    "i",
)
#: Domain and intent NLU tends to give background speech that happens to sound like a request.
BACKGROUND_GUESSES: tuple[str, ...] = (
    "QuestionIntent",
    "PlayMusicIntent",
    "PlayVideoIntent",
    "LocalWeatherIntent",
    "TimeIntent",
    "BuyIntent",
    "CallIntent",
)

DEVICE_TYPES_WEIGHTED: tuple[tuple[str, float], ...] = (
    ("speaker", 0.42),
    ("screen", 0.16),
    ("tv", 0.1),
    ("car", 0.1),
    ("phone", 0.14),
    ("headphones", 0.08),
)
HAS_SCREEN = {
    "speaker": False,
    "screen": True,
    "tv": True,
    "car": False,
    "phone": True,
    "headphones": False,
}
#: Typical signal-to-noise ratio (dB) of each device's microphone setting.
DEVICE_SNR = {
    "speaker": 17.0,
    "screen": 17.0,
    "tv": 12.0,
    "car": 11.0,
    "phone": 21.0,
    "headphones": 24.0,
}
#: How likely a device wakes on background speech (relative).
DEVICE_FALSE_WAKE = {
    "speaker": 1.0,
    "screen": 1.0,
    "tv": 2.2,
    "car": 0.7,
    "phone": 0.4,
    "headphones": 0.3,
}
LOCALES: tuple[tuple[str, float], ...] = (
    ("en-US", 0.5),
    ("en-GB", 0.18),
    ("en-IN", 0.14),
    ("en-AU", 0.08),
    ("en-CA", 0.1),
)
#: Speech-recognition difficulty of each locale's accents (the recogniser was trained on en-US).
LOCALE_ACCENT = {"en-US": 0.0, "en-GB": 0.25, "en-IN": 0.6, "en-AU": 0.35, "en-CA": 0.1}


def cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    """Cumulative weights normalised to end at 1, for draws with `bisect`."""
    total = float(sum(weights))
    return [w / total for w in accumulate(weights)]
