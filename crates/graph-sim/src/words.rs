//! Word pools for generated names, subjects and bodies (deliberately international).

/// Given names, several non-ASCII.
pub const GIVEN: &[&str] = &[
    "Adele",
    "Alex",
    "Björn",
    "Chloé",
    "Diego",
    "Émilie",
    "Fatima",
    "Grzegorz",
    "Hana",
    "Isabel",
    "Jürgen",
    "Kenji",
    "Léa",
    "Mårten",
    "Nuño",
    "Olga",
    "Paweł",
    "Quentin",
    "Renée",
    "Søren",
    "Tomás",
    "Ute",
    "Vikram",
    "Wanjiru",
    "Xiao",
    "Yusuf",
    "Zoë",
    "Ανδρέας",
    "Дмитрий",
    "美咲",
];

/// Surnames, several non-ASCII.
pub const SURNAMES: &[&str] = &[
    "Vance",
    "Wilber",
    "Åkesson",
    "Dubois",
    "García",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Kowalczyk",
    "Ødegaard",
    "Núñez",
    "Smith",
    "Chen",
    "Novák",
    "Fernández",
    "Öztürk",
    "Lefèvre",
    "Schäfer",
    "Ivanova",
    "Papadopoulos",
];

/// Job titles.
pub const JOBS: &[&str] = &[
    "Retail Manager",
    "Marketing Assistant",
    "Developer",
    "Product Manager",
    "Accountant",
    "Legal Counsel",
    "Sales Associate",
    "HR Business Partner",
    "Designer",
    "Support Engineer",
];

/// Subject fragments.
pub const SUBJECTS: &[&str] = &[
    "Holiday hours update",
    "Quarterly report",
    "Réunion de lundi",
    "Angebot für Q4",
    "Invoice #4711",
    "Re: Budget 2027",
    "Fwd: Contract draft",
    "Lunch?",
    "Projektplan – Überarbeitung",
    "会議の議事録",
    "Отчёт за ноябрь",
    "Team offsite 🎉",
    "Security alert: new sign-in",
    "Weekly digest",
    "Customer feedback",
    "Παρουσίαση προϊόντος",
    "Travel booking confirmation",
    "Year-end review",
    "Welcome aboard!",
    "Server migration",
];

/// Body sentences.
pub const SENTENCES: &[&str] = &[
    "Please find the details below.",
    "Let me know if you have any questions.",
    "Merci pour votre retour rapide.",
    "Wir sehen uns nächste Woche im Büro.",
    "The numbers look better than expected this quarter.",
    "Can we move the meeting to Thursday at 14:00?",
    "I've attached the latest version of the document.",
    "ご確認のほどよろしくお願いいたします。",
    "Спасибо, всё получил.",
    "Reminder: the office is closed on Friday.",
    "¿Podemos revisar el presupuesto mañana?",
    "Great work, everyone! 🚀",
];

/// File names for generated documents, including hostile ones.
pub const FILE_NAMES: &[&str] = &[
    "Budget 2027.xlsx",
    "Report.docx",
    "notes.txt",
    "photo.jpg",
    "Präsentation.pptx",
    "契約書.pdf",
    "data.csv",
    "archive.zip",
    "README.md",
    "Résumé – final (2).docx",
    "🎉 party plan.txt",
    "trailing dot.",
    "trailing space ",
    "CON.txt",
    "a..b.txt",
    "100% done.txt",
    "#hashtag.txt",
    "it's \"quoted\".txt",
    "design.psd",
    "backup.bak",
];

/// Folder names for generated drives, including hostile ones.
pub const FOLDER_NAMES: &[&str] = &[
    "Projects",
    "Archive",
    "Photos",
    "Documents légaux",
    "Übersicht",
    "2026",
    "Shared with team",
    "日本語フォルダ",
    "Very long folder name that keeps going and going to test path length limits in every component of the product",
    "dots..and..more",
    "LPT1",
    "emoji 📁",
];

/// Words for site and group names.
pub const TEAMS: &[&str] = &[
    "Marketing",
    "Sales",
    "Engineering",
    "Finance",
    "Legal",
    "Human Resources",
    "Support",
    "Research & Development",
    "Operations",
    "Ventes Europe",
];
