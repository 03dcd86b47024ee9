//! Fixed text material the generator draws from: per-language chat lines, names, rooms, tags.
//!
//! The lines deliberately mix scripts (Latin with Finnish diacritics, Cyrillic, CJK), emoji
//! (including ZWJ sequences and skin-tone modifiers), multi-line texts and characters that need
//! JSON escaping, so that every stage of the pipeline sees the awkward cases real chats contain.

/// A chat language: decides the room, the `Language: xx` tag and which lines are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Fi,
    Ru,
    Ja,
    Zh,
}

impl Lang {
    /// Weighted choice table: English dominates, as on a typical European customer site.
    pub(crate) const WEIGHTED: [Lang; 10] =
        [Lang::En, Lang::En, Lang::En, Lang::En, Lang::Fi, Lang::Fi, Lang::Fi, Lang::Ru, Lang::Ja, Lang::Zh];

    /// ISO 639-1 code, as used in `Language: xx` tags.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fi => "fi",
            Lang::Ru => "ru",
            Lang::Ja => "ja",
            Lang::Zh => "zh",
        }
    }

    /// Index into [`ROOMS`] of the (unencrypted) room serving this language.
    pub(crate) fn room(self) -> usize {
        match self {
            Lang::En => 0,
            Lang::Fi => 1,
            Lang::Ru => 2,
            Lang::Ja | Lang::Zh => 3,
        }
    }

    /// The lines of this language.
    pub(crate) fn lines(self) -> &'static Lines {
        match self {
            Lang::En => &EN,
            Lang::Fi => &FI,
            Lang::Ru => &RU,
            Lang::Ja => &JA,
            Lang::Zh => &ZH,
        }
    }
}

/// Lines for one language, by conversational role.
pub(crate) struct Lines {
    /// First visitor message.
    pub(crate) visitor_open: &'static [&'static str],
    /// Later visitor messages.
    pub(crate) visitor: &'static [&'static str],
    /// Operator (or bot) messages.
    pub(crate) agent: &'static [&'static str],
    /// Proactive invitation texts sent by an automation rule (`autosuggest`).
    pub(crate) autosuggest: &'static [&'static str],
    /// Sentences concatenated into the 2000-character messages.
    pub(crate) long: &'static str,
    /// Visitor display names (the `username` variable).
    pub(crate) names: &'static [&'static str],
}

const EN: Lines = Lines {
    visitor_open: &[
        "Hi! I have a question about my order",
        "Hello, is anyone there?",
        "Hi, my invoice looks wrong 😕",
        "Good morning!\nI can't log in to my account.\nIt says \"password expired\".",
        "hey",
        "Can I change the delivery address of order #48213?",
    ],
    visitor: &[
        "Thanks!",
        "ok 👍",
        "It's order 48213, placed on Monday.",
        "I tried that already but it still doesn't work",
        "Here is the error:\n\n  Error 500: upstream timeout\n  at /checkout/confirm\n\nAny idea?",
        "Path is C:\\Users\\me\\Downloads\\invoice.pdf — does that help?",
        "Great, that worked 🎉🎉",
        "Can you send it to my email instead?",
        "Perfect, have a nice day! 👋🏽",
        "<b>bold?</b> sorry, pasted from somewhere",
        "My family 👨‍👩‍👧‍👦 uses the same account, is that OK?",
    ],
    agent: &[
        "Hi, this is customer service, how can I help you?",
        "Let me check that for you, one moment please.",
        "I can see your order here. It was shipped yesterday 📦",
        "Could you please tell me your customer number?",
        "I've reset your password. You should get an email shortly.",
        "Steps:\n1. Open Settings\n2. Choose \"Billing\"\n3. Click Update",
        "Is there anything else I can help you with?",
        "Thank you for contacting us! 😊",
    ],
    autosuggest: &["Hi! Can we help you with something?", "Need help choosing the right plan?"],
    long: "We are sorry for the inconvenience caused by the delay. ",
    names: &["John Doe", "Mary O'Neil", "Zoë Saldaña", "Renée Fleming"],
};

const FI: Lines = Lines {
    visitor_open: &[
        "Hei! Minulla olisi kysymys tilauksestani",
        "Moi, onko ketään paikalla?",
        "Hyvää päivää.\nLaskussani on virhe.\nVoitteko tarkistaa?",
        "Hei, en pääse kirjautumaan sisään 😩",
    ],
    visitor: &[
        "Kiitos!",
        "Selvä 👍",
        "Tilausnumero on 48213.",
        "Yritin jo, mutta se ei vieläkään toimi.",
        "Äänestin jo äsken, mutta en saanut vahvistusta.",
        "Hyvää jatkoa! ☀️",
    ],
    agent: &[
        "Hei, asiakaspalvelu täällä. Miten voin auttaa?",
        "Hetkinen, tarkistan asian.",
        "Tilauksenne on lähetetty eilen 📦",
        "Voisitteko kertoa asiakasnumeronne?",
        "Ohjeet:\n1. Avaa Asetukset\n2. Valitse ”Laskutus”\n3. Paina Päivitä",
        "Kiitos yhteydenotosta! 😊",
    ],
    autosuggest: &["Hei! Voimmeko auttaa?", "Tarvitsetko apua tuotteen valinnassa?"],
    long: "Pahoittelemme viivästyksestä aiheutunutta häiriötä ja hämmennystä. ",
    names: &["Matti Meikäläinen", "Liisa Järvinen", "Äijä Öhman"],
};

const RU: Lines = Lines {
    visitor_open: &[
        "Здравствуйте! У меня вопрос по заказу",
        "Добрый день.\nНе могу войти в личный кабинет.",
        "Привет, кто-нибудь есть? 🙂",
    ],
    visitor: &[
        "Спасибо!",
        "Хорошо 👍",
        "Номер заказа 48213.",
        "Я уже пробовал, но ничего не работает.",
        "Отлично, всё получилось 🎉",
    ],
    agent: &[
        "Здравствуйте, служба поддержки. Чем могу помочь?",
        "Одну минуту, сейчас проверю.",
        "Ваш заказ был отправлен вчера 📦",
        "Спасибо за обращение! 😊",
    ],
    autosuggest: &["Здравствуйте! Можем ли мы вам помочь?"],
    long: "Приносим извинения за доставленные неудобства и задержку ответа. ",
    names: &["Иван Петров", "Анна Смирнова", "Ёлкин Юрий"],
};

const JA: Lines = Lines {
    visitor_open: &[
        "こんにちは！注文について質問があります",
        "すみません、ログインできません。\nパスワードが違うと表示されます。",
    ],
    visitor: &["ありがとうございます！", "了解です 👍", "注文番号は48213です。", "まだ動きません…😢"],
    agent: &[
        "こんにちは、カスタマーサポートです。ご用件をお伺いします。",
        "少々お待ちください。確認いたします。",
        "ご注文は昨日発送されました 📦",
        "お問い合わせありがとうございました！",
    ],
    autosuggest: &["何かお困りですか？"],
    long: "ご不便をおかけして大変申し訳ございません。引き続きよろしくお願いいたします。",
    names: &["山田太郎", "佐藤花子"],
};

const ZH: Lines = Lines {
    visitor_open: &["你好！我想问一下我的订单", "您好，\n我无法登录我的账户。"],
    visitor: &["谢谢！", "好的 👍", "订单号是48213。", "还是不行 😞"],
    agent: &[
        "您好，这里是客服，请问有什么可以帮您？",
        "请稍等，我帮您查一下。",
        "您的订单昨天已发货 📦",
        "感谢您的咨询！",
    ],
    autosuggest: &["您好！需要帮助吗？"],
    long: "对于给您带来的不便，我们深表歉意，并将尽快为您处理。",
    names: &["王小明", "李华"],
};

/// Rooms of the organization: (name, is the encrypted room). The last one is where encrypted
/// chats live, because giosg switches encryption on per room.
pub(crate) const ROOMS: [&str; 5] =
    ["Website chat", "Asiakaspalvelu", "Служба поддержки", "サポート窓口", "Demo encrypted room 🔒"];

/// Index of the encrypted room in [`ROOMS`].
pub(crate) const ENCRYPTED_ROOM: usize = 4;

/// Operators and bots: (sender_name, sender_public_name, is a bot, has an avatar).
pub(crate) const USERS: [(&str, &str, bool, bool); 7] = [
    ("Anna Virtanen", "Anna", false, true),
    ("David Developer", "David Developer", false, true),
    ("Olga Smirnova", "Ольга", false, false),
    ("Yuki Tanaka", "ゆき", false, true),
    ("John Smith", "Customer Service", false, false),
    ("Mikko Korhonen", "Mikko", false, true),
    ("Giosgbot", "Chatter Bot 🤖", true, true),
];

/// Automation rules that send `autosuggest` messages: (internal name, public name).
pub(crate) const RULES: [(&str, &str); 2] = [("Welcome rule", "Customer Service"), ("Pricing page rule", "Sales")];

/// Tag names of the organization's catalog (besides the `Language: xx` tags).
pub(crate) const TAGS: [&str; 8] =
    ["Sales", "Support", "Premium", "Billing", "Complaint", "Lead: hot 🔥", "Palaute", "Возврат"];

/// Pages visitors start chats from: (url, title).
pub(crate) const PAGES: [(&str, &str); 4] = [
    ("https://shop.example.com/checkout", "Checkout – Example Shop"),
    ("https://shop.example.com/pricing?plan=pro&ref=ad", "Pricing"),
    ("https://example.fi/tuotteet/kengät", "Kengät | Esimerkki"),
    ("https://example.com/help/faq#login", "FAQ: login problems"),
];

/// Button replies a visitor can click on an autosuggest attachment: (button text, value).
pub(crate) const BUTTONS: [(&str, &str); 3] =
    [("Yes, please", "yes"), ("No thanks", "no"), ("Talk to a human 🙋", "human")];
