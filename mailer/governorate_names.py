"""Names of Iraq's governorates in each supported locale, keyed by a stable English key."""

GOVERNORATE_NAMES: dict[str, dict[str, str]] = {
    "Baghdad": {"en": "Baghdad", "ar": "بغداد", "ckb": "بەغدا", "kmr": "Bexda"},
    "Basra": {"en": "Basra", "ar": "البصرة", "ckb": "بەسرە", "kmr": "Besra"},
    "Nineveh": {"en": "Nineveh", "ar": "نينوى", "ckb": "نەینەوا", "kmr": "Neynewa"},
    "Erbil": {"en": "Erbil", "ar": "أربيل", "ckb": "هەولێر", "kmr": "Hewlêr"},
    "Sulaymaniyah": {"en": "Sulaymaniyah", "ar": "السليمانية", "ckb": "سلێمانی", "kmr": "Silêmanî"},
    "Duhok": {"en": "Duhok", "ar": "دهوك", "ckb": "دهۆک", "kmr": "Duhok"},
    "Halabja": {"en": "Halabja", "ar": "حلبجة", "ckb": "هەڵەبجە", "kmr": "Helebce"},
    "Kirkuk": {"en": "Kirkuk", "ar": "كركوك", "ckb": "کەرکووک", "kmr": "Kerkûk"},
    "Anbar": {"en": "Anbar", "ar": "الأنبار", "ckb": "ئەنبار", "kmr": "Enbar"},
    "Babil": {"en": "Babil", "ar": "بابل", "ckb": "بابل", "kmr": "Babil"},
    "Karbala": {"en": "Karbala", "ar": "كربلاء", "ckb": "کەربەلا", "kmr": "Kerbela"},
    "Najaf": {"en": "Najaf", "ar": "النجف", "ckb": "نەجەف", "kmr": "Necef"},
    "Qadisiyah": {"en": "Qadisiyah", "ar": "القادسية", "ckb": "قادسیە", "kmr": "Qadisiye"},
    "Muthanna": {"en": "Muthanna", "ar": "المثنى", "ckb": "موسەننا", "kmr": "Mûsenna"},
    "Dhi Qar": {"en": "Dhi Qar", "ar": "ذي قار", "ckb": "زیقار", "kmr": "Ziqar"},
    "Maysan": {"en": "Maysan", "ar": "ميسان", "ckb": "مەیسان", "kmr": "Meysan"},
    "Wasit": {"en": "Wasit", "ar": "واسط", "ckb": "واست", "kmr": "Wasit"},
    "Diyala": {"en": "Diyala", "ar": "ديالى", "ckb": "دیالە", "kmr": "Diyala"},
    "Saladin": {"en": "Saladin", "ar": "صلاح الدين", "ckb": "سەلاحەددین", "kmr": "Selahedîn"},
}
