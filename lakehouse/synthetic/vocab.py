"""Word lists the generators draw from (plain data, so generation stays deterministic and offline)."""

from __future__ import annotations

import functools
import itertools

import numpy as np

FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Donald", "Margaret",
    "Steven", "Ashley", "Andrew", "Kimberly", "Paul", "Emily", "Joshua", "Donna", "Kenneth", "Michelle",
    "Kevin", "Carol", "Brian", "Amanda", "Timothy", "Melissa", "Ronald", "Deborah", "George", "Stephanie",
    "Jason", "Rebecca", "Edward", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob", "Amy",
    "Nicolas", "Sofia", "Lukas", "Emma", "Mateo", "Olivia", "Hiroshi", "Yuki", "Arjun", "Priya",
    "Chen", "Mei", "Omar", "Fatima", "Lars", "Ingrid", "Pierre", "Camille", "Giulia", "Marco",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Muller", "Schmidt", "Rossi", "Dubois", "Tanaka", "Sato", "Kim", "Park", "Singh", "Patel",
)  # fmt: skip
#: (city, country, postal code prefix)
CITIES: tuple[tuple[str, str, str], ...] = (
    ("New York", "US", "100"), ("Los Angeles", "US", "900"), ("Chicago", "US", "606"),
    ("Houston", "US", "770"), ("Phoenix", "US", "850"), ("Seattle", "US", "981"),
    ("Boston", "US", "021"), ("Denver", "US", "802"), ("Atlanta", "US", "303"), ("Miami", "US", "331"),
    ("Toronto", "CA", "M5V"), ("Vancouver", "CA", "V6B"), ("London", "GB", "EC1"),
    ("Manchester", "GB", "M1 "), ("Berlin", "DE", "101"), ("Munich", "DE", "803"),
    ("Paris", "FR", "750"), ("Lyon", "FR", "690"), ("Madrid", "ES", "280"), ("Milan", "IT", "201"),
    ("Amsterdam", "NL", "101"), ("Stockholm", "SE", "111"), ("Sydney", "AU", "200"), ("Tokyo", "JP", "100"),
)  # fmt: skip
STREETS: tuple[str, ...] = (
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Blvd", "Park Ave",
    "Lake Rd", "Hill St", "Sunset Blvd", "River Rd", "Church St", "High St", "Mill Ln", "King St",
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net", "mail.example", "shop.example")

#: category -> (sku prefix, typical price range in dollars, nouns)
CATEGORIES: dict[str, tuple[str, tuple[float, float], tuple[str, ...]]] = {
    "electronics": ("ELE", (15.0, 1500.0), ("Headphones", "Speaker", "Monitor", "Keyboard", "Tablet")),
    "apparel": ("APP", (8.0, 250.0), ("T-Shirt", "Jacket", "Jeans", "Sweater", "Dress", "Hoodie")),
    "footwear": ("FTW", (25.0, 300.0), ("Running Shoes", "Boots", "Sneakers", "Sandals", "Loafers")),
    "home": ("HOM", (5.0, 800.0), ("Lamp", "Rug", "Blender", "Cookware Set", "Pillow", "Vase")),
    "beauty": ("BEA", (4.0, 120.0), ("Moisturizer", "Serum", "Shampoo", "Perfume", "Lipstick")),
    "sports": ("SPO", (10.0, 900.0), ("Yoga Mat", "Dumbbells", "Bike Helmet", "Tent", "Backpack")),
    "toys": ("TOY", (5.0, 150.0), ("Puzzle", "Building Set", "Doll", "Board Game", "RC Car")),
    "books": ("BOK", (5.0, 60.0), ("Novel", "Cookbook", "Atlas", "Biography", "Comic")),
    "grocery": ("GRO", (2.0, 40.0), ("Coffee Beans", "Olive Oil", "Tea Sampler", "Chocolate", "Granola")),
}  # fmt: skip
BRANDS: tuple[str, ...] = (
    "Northwind", "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Contoso", "Fabrikam",
    "Tailspin", "Litware", "Proseware", "Adventure Works", "Blue Yonder", "Coho", "Wingtip",
)  # fmt: skip
ADJECTIVES: tuple[str, ...] = (
    "Classic", "Ultra", "Pro", "Eco", "Smart", "Compact", "Deluxe", "Essential", "Premium", "Urban",
    "Vintage", "Sport", "Lite", "Max", "Organic", "Wireless",
)  # fmt: skip
COLORS: tuple[str, ...] = ("black", "white", "red", "blue", "green", "grey", "navy", "beige", "pink", "olive")
SIZES: tuple[str, ...] = ("XS", "S", "M", "L", "XL", "XXL", "one-size")
MATERIALS: tuple[str, ...] = (
    "cotton",
    "polyester",
    "leather",
    "steel",
    "aluminium",
    "wood",
    "glass",
    "plastic",
)
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
DEVICE_P: tuple[float, ...] = (0.42, 0.5, 0.08)
WAREHOUSES: tuple[str, ...] = ("WH-NYC", "WH-ATL", "WH-CHI", "WH-DAL", "WH-LAX", "WH-SEA")
TOPICS: tuple[str, ...] = (
    "deals",
    "new-arrivals",
    "sustainability",
    "outdoor",
    "tech",
    "style",
    "kids",
    "home",
)

REVIEW_TITLES: dict[int, tuple[str, ...]] = {
    1: ("Very disappointed", "Broke after a week", "Do not buy", "Waste of money"),
    2: ("Not great", "Below expectations", "Meh", "Could be better"),
    3: ("It's okay", "Average product", "Does the job", "Mixed feelings"),
    4: ("Pretty good", "Happy with it", "Good value", "Would recommend"),
    5: ("Excellent!", "Love it", "Perfect", "Best purchase this year"),
}
REVIEW_PHRASES: dict[int, tuple[str, ...]] = {
    1: ("stopped working", "poor quality", "arrived damaged", "nothing like the pictures"),
    2: ("feels cheap", "sizing is off", "slow delivery", "average build"),
    3: ("decent for the price", "works as described", "nothing special", "packaging was fine"),
    4: ("solid build", "fast shipping", "good quality", "comfortable to use"),
    5: ("exceeded expectations", "great quality", "my family loves it", "would buy again"),
}

_SYLLABLES = (
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "an", "bel", "cor", "dra", "eth", "fin", "gor",
    "hal", "ix", "jun", "kel", "lum", "mor", "nix", "ost", "pra", "qua", "ris", "sol", "tar", "umb",
    "ven", "wyl", "xan", "yor", "zel", "bri", "cla", "dun", "fey", "gla",
)  # fmt: skip


@functools.cache
def word_bank() -> np.ndarray:
    """~64,000 distinct pseudo-words: random text from them barely compresses (what TOAST tests need)."""
    words = ["".join(parts) for parts in itertools.product(_SYLLABLES, repeat=3)]
    return np.array(words, dtype=object)
