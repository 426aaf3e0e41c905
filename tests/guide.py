"""The tiny hand-made guide every quick test trains on: four genres whose titles share words
(a trained model has a known right answer), its XMLTV writer, and the small training config."""
from __future__ import annotations

import gzip
from pathlib import Path
from xml.sax.saxutils import escape

from epgembed.config import Config

# Four genres whose titles share words, so a trained model has a known right answer.
GENRES = {
    "sport": ["Football Tonight", "Football Weekly", "Football Highlights", "Premier Football Live",
              "Tennis Tonight", "Tennis Weekly", "Golf Highlights", "Rugby Highlights",
              "Motorsport Weekly", "Cycling Highlights", "Sport Extra", "Boxing Tonight"],
    "news": ["News at Six", "Morning News", "Evening News", "World News Today", "News Hour",
             "Business News", "Weather and News", "Late News", "News Review", "Regional News",
             "Breaking News Tonight", "The News Desk"],
    "kids": ["Happy Puppy Friends", "Puppy Club", "Dragon Friends", "Little Dragon Tales",
             "Cartoon Club", "Cartoon Puppy", "Dragon Cartoon Hour", "Friends of the Forest",
             "Forest Cartoon Tales", "Little Puppy Tales", "Kids Club", "Tiny Dragon Friends"],
    "cooking": ["Kitchen Heroes", "Great Kitchen Battle", "Baking Kitchen", "Cooking with Anna",
                "Kitchen Nightmares Live", "Cooking Weekly", "Baking Masters", "The Cooking Show",
                "Family Kitchen", "Quick Cooking", "Baking at Home", "Kitchen Secrets"],
}


def programme_xml(title: str, categories: list[str], channel: str = "ch1",
                  start: str = "20260101060000 +0000", sub_title: str | None = None) -> str:
    cats = "".join(f"<category>{escape(c)}</category>" for c in categories)
    sub = f"<sub-title>{escape(sub_title)}</sub-title>" if sub_title else ""
    return (f'<programme start="{start}" stop="{start}" channel="{channel}">'
            f"<title>{escape(title)}</title>{sub}{cats}</programme>\n")


def write_xmltv(path: Path, programmes: list[str], gz: bool | None = None) -> Path:
    text = ('<?xml version="1.0" encoding="UTF-8"?>\n<tv>\n<channel id="ch1"><display-name>One'
            "</display-name></channel>\n" + "".join(programmes) + "</tv>\n")
    data = text.encode("utf-8")
    if gz or (gz is None and path.suffix == ".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def tiny_programmes() -> list[str]:
    out = []
    for genre, titles in GENRES.items():
        for i, title in enumerate(titles):
            for airing in range(2):
                cats = [genre.capitalize(), "Series"] if i % 3 else [genre]
                out.append(programme_xml(f"{title} S1 Ep. {airing + 1}" if i == 0 and airing else title, cats,
                                         channel=f"ch{airing + 1}"))
    out.append(programme_xml("Unlabelled Football Special", []))
    return out


TINY_CONFIG = Config().replace(train={"dim": 32, "epochs": 15, "min_examples": 0, "val_fraction": 0.0,
                                                      "lr": 0.2},
                               index={"n_trees": 10})
