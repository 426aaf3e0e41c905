"""The invented text of the sample guide (epgembed/gen/sample.py): titles by genre and
language, categories, description sentences and words. Written for this project; nothing
is taken from real dumps."""

# "genre[.sub] titles|..." (indented lines continue; "@de " switches the language, English first).
# Every title is invented for this sample.
TITLES = """
news Morning News|Evening News|News at Noon|World News Roundup|The Late News|Business News Hour|Weather Watch
  |Headline Report|Newsroom Live|Capital Report|News Overnight|Global Business Report|@de Nachrichten am Morgen
  |Abendjournal|Tagesblick|Nachrichten kompakt|Wetterblick|Wirtschaftsjournal|Länderjournal Nord|Nachtjournal
  |Regionalnachrichten|@fr Le Journal du Soir|Le Journal de Midi|Météo Express|Info Matin|@es Noticias Mediodía
  |Noticiero Nocturno
sport.football Football Highlights|Premier Football Tonight|Football Weekly|Monday Night Football Review
  |Football Extra|Matchday Football|Football Legends|Women&apos;s Football Weekly|Goals Galore|@de Fußball am Sonntag
  |Fußball-Bundesliga kompakt|Regionalliga Fußball live|Die Fußballwoche|Fußballstammtisch|@fr Le Mag du Football
  |Football Club Magazine|@es Fútbol Total|La Noche del Fútbol
sport.tennis Tennis Grand Slam Highlights|Tennis Masters|Centre Court Tennis|Tennis Tonight|Tennis Weekly
  |@de Tennismagazin|Tennis am Mittag|@fr Tennis Passion
sport.motorsport Motorsport Weekly|Formula Speed Highlights|Rally Extreme|Superbike Weekend|Motorsport Legends
  |Speedway Nights|@de Rallye Magazin|Motorsport kompakt|@fr Moteurs Passion
sport Cycling Classics|Golf Tour Review|Basketball Tonight|Darts Masters|Snooker Gold|Boxing Fight Night
  |Rugby Union Review|Athletics Diamond Night|@de Handball-Bundesliga live|Radsport kompakt|Wintersport extra
  |Skispringen am Berg Isel|Curling um die Zugspitze-Trophäe
kids The Adventures of Captain Barnacle|Bunny Bakery|Robo Pals|Little Lighthouse|Paw Rescue Crew|Space Kittens
  |Tiny Trucks|Pirate School|Dragon Valley Academy|Mia and the Moon Bears|Super Sprouts|The Wobblies|Ninja Hamsters
  |Little Explorers|ＡＮＩＭＥ Ｃｌｕｂ|@de Die Abenteuer von Kapitän Knopf|Kleine Drachen|Die Waldwichtel|Lotte und der Dino
  |Die Piratenschule|Kleiner Roboter Bolt|Schlafmützchen|Die Tierdetektive|Kleine Entdecker|@fr Les Aventures de Lulu
  |Petit Ours Polaire|Les Dinos Farceurs|@es Las Aventuras de Tito
doc Wild Planet|Ocean Giants|Planet Predators|Secret Life of Owls|Wild Africa|Frozen Frontiers|Animal Rescue Vets
  |Wildlife Diaries|Deep Ocean Secrets|Safari Nights|Kingdom of the Bees|Mega Machines|Factory Secrets
  |Science Uncovered|Coelacanth: Living Fossil|@de Tierische Nachbarn|Wilde Wälder Europas|Expedition Tiefsee
  |Geheimnisvolle Moore|Die Welt der Insekten|Im Reich der Wölfe|Quastenflosser – Fisch aus der Urzeit
  |Die großen Ingenieure|Wissen extrem|@fr Planète Sauvage|Les Secrets de l'Océan|Animaux Extraordinaires
  |@es Mundo Salvaje
crime Harbour Point Homicide|Detective Inspector Cole|Murder in the Valley|Strike Team: Lisbon|Cold Case Unit
  |Police Patrol Auckland|The Coroner's Files|Murder Mystery Club|Blue Line Precinct|Detective Quinn Investigates
  |Homicide Bay|Death on the Moor|@de Mordkommission Hamburg|Mordkommission Leipzig|Mordkommission Berlin-Mitte
  |Kommissarin Lund|Kripo Lüneburg|Der Kommissar und das Watt|Mord im Alpenland|Kommissar Falk|Tödliche Heide
  |@fr Enquêtes à Marseille|Commissaire Moreau|Brigade Criminelle: Lyon|Crimes en Provence|@es Inspectora Vega
  |Crímenes en Sevilla
comedy The Neighbours Next Door|Roommates|Office Hours|My Family and Other Disasters|Dad's Garage|The Flatmates
  |Laugh Track|Stand-Up Night|Comedy Basement|Uncle Barry's Bed and Breakfast|@de Familie Schnabel|Die WG
  |Lachen mit Herz|Comedy-Nacht|Chaos im Büro|Nachbarn wie wir|Stand-up Abend|@fr Les Colocs|Famille Dupré
  |Soirée Comédie|@es Vecinos y Amigos|La Casa de los Líos|Risas en Familia
cooking Kitchen Heroes|The Great Kitchen Battle|Kitchen Rescue|Bake It Better|The Home Cook|Chef on the Road
  |Grandma&apos;s Secret Recipes|BBQ Kings|Vegan Kitchen|Cook Clever|Street Food Heroes|Pasta Masters|Dessert Duel
  |@de Kochen mit Oma Hilde|Das große Küchenduell|Schnell gekocht|Küchengeheimnisse|#Kochduell|Backen mit Leidenschaft
  |Sauerampfer & Co.|@fr Cuisine Facile|La Cuisine de Mamie|Les Chefs en Duel|Pâtisserie Passion|@es Cocina Fácil
reality First Date Diaries|Love at First Swipe|Bride or Bust|Island of Singles|Married at Sunset|Beach House Singles
  |Matchmaker Mansion|Renovation Rescue|Jungle Survivors|@de #SingleSommer|Liebe auf den ersten Klick|Die Singlevilla
  |Landliebe gesucht|Das perfekte Date|Promi-Campingplatz|@fr L'Amour en Camping|Célibataires en Mer
  |@es Amor en la Isla
quiz The Million Quiz|Jackpot Wheel|Quiz Night|Brain Busters|Answer Rush|Quizmasters|Family Quiz Showdown|Trivia Tower
  |Spin to Win|Puzzle Palace|@de Das Millionenquiz|Rätselraten am Abend|Wer weiß es?|Das Quizstudio|Das Glückslos
  |@fr Le Grand Quiz|Le Quiz des Champions|@es Sabelotodo
scifi Star Frontier|Galaxy Patrol|Orbit Station Nine|The Nebula Chronicles|Robot Uprising|Alien Frontier|Space Rangers
  |Planet Exodus|Starship Meridian|Code Orbit: Andromeda|Time Voyagers|The Quantum Gate|Mars Colony One
  |@de Raumschiff Adler|Die Sternenfahrer|Raumstation Zeta|@fr Les Voyageurs des Étoiles|Galaxie Perdue
music Top 40 Countdown|Hit Parade|Rock Legends|Unplugged Sessions|Jazz at Midnight|Classic Hits|Country Gold
  |Club Beats|Festival Nights|90s Hits|Music Video Mix|Ｔｏｋｙｏ Ｂｅａｔ|@de Schlagerparade|★ Hitparade der Stars
  |Volksmusik am Sonntag|Rocknacht|Klassik am Abend|@fr Les Tubes de l'Été|Concert Privé|@es Éxitos Latinos
  |Noche de Salsa
history Secrets of the Pharaohs|Ancient Empires|History's Greatest Battles|The War Files|Lost Cities of the Maya
  |Medieval Castles|Vikings Uncovered|The Roman Empire Revealed|The Curse of Quetzalcoatl|@de Geschichte der Kaiser
  |Die Habsburger|Terra Historica|Das Geheimnis der Pharaonen|Mythos Burgen|Die Geschichte Europas|Koggen der Hanse
  |@fr Les Grandes Batailles|Les Rois de France|@es Historia de Imperios
travel Journey to the Islands|Rail Journeys|Coastal Roads|Hidden Europe|Backpacker Diaries|Island Hopping
  |Great Railway Escapes|Road Trip America|Cruise Diaries|Weekend Getaways|@de Traumreisen|Weltreise
  |Zugfahrten durch die Alpen|Inselträume|Mit dem Rad durch Masuren|Wolkenkuckucksheim – Reisen ins Blaue
  |@fr Carnets de Voyage|Voyages Insolites|Les Routes du Monde|@es Viajeros por el Mundo
shopping Home Shopping|Shop at Home|Bargain Hour|TV Shop Direct|Jewellery Showcase|Fashion Deals|Beauty Box
  |@de Teleshopping|Einkaufsbummel TV|Schmuck & Stil|@fr Télé Achat|Shopping Direct
movies The Copper Canyon Job|Bullets Over Baja|A Winter in Vermont|The Last Ranger|Midnight Heist|Love in Lisbon
  |Dead Man's Harbor|The Silver Saddle|Night Train to Prague|Operation Nightfall|Summer of the Fireflies
  |The Forgotten Valley|Sweet Home Montana|Hostile Skies|@de Die Rache des Fremden|Liebe in den Bergen
  |Das Geheimnis der Mühle|Die Nacht von Tanger|@fr Le Dernier Train pour Lyon|Les Amants de Saint-Malo
  |La Nuit des Ombres|@es El Último Tren|Amor en Barcelona
"""
# "genre English-variants German-variants": near-synonyms and case variants on purpose.
CATS = """
news News|news|News/Current_Affairs|News_And_Factual Nachrichten|Info|News
sport Sport|Sports|sport Sport|Sportmagazin|Sports
kids Kids|Children|Animation|Cartoons Kinder|Zeichentrick|Animation
doc Documentary|Documentaries|Nature|Science_and_Nature Dokumentation|Natur|Doku
crime Crime|Drama|Crime_Drama|Mystery Krimi|Krimiserie|Drama
comedy Comedy|comedy|Sitcom Komödie|Comedy|Sitcom
cooking Cooking|Food|Lifestyle|Food_&_Cooking Kochen|Kochshow|Essen_&_Trinken
reality Reality|Reality_TV|Dating|Entertainment Reality|Doku-Soap|Unterhaltung
quiz Game_Show|Quiz|Game_Shows|Entertainment Quiz|Show|Spielshow
scifi Sci-Fi|Science_Fiction|Sci-Fi_&_Fantasy|Drama Science-Fiction|Sci-Fi|Fantasy
music Music|music|Concert Musik|Konzert|Schlager
history History|Documentary|Historical Geschichte|Dokumentation|History
travel Travel|Lifestyle|Travel_&_Adventure Reisen|Reise|Reportage
shopping Shopping|Home_Shopping|Infomercial Verkaufssendung|Teleshopping|Shopping
movies Movie|Movies|Film|Feature_Film Spielfilm|Film
football Football|Soccer Fußball
tennis Tennis Tennis
motorsport Motorsport|Motor_Sport Motorsport
moviegenre Action|Drama|Thriller|Western|Romance|Comedy|Horror Action|Drama|Thriller|Western|Liebesfilm|Komödie|Horror
"""
# "genre en|de|fr|es" one-sentence descriptions
DESC = """
news The day's headlines and weather.|Nachrichten und Wetter.|L'essentiel de l'actualité.|Las noticias del día.
sport Goals, results and analysis.|Tore, Ergebnisse, Analysen.|Les temps forts.|Resultados y goles.
kids Fun and friendship for young viewers.|Spaß für die Kleinen.|Des aventures pour les petits.|Diversión infantil.
doc A close look at the natural world.|Bilder aus der Natur.|Au cœur de la nature.|Un viaje por la naturaleza.
crime A body is found on the beach.|Ein Toter gibt Rätsel auf.|Un meurtre mystérieux.|Un crimen sacude la ciudad.
comedy Chaos when plans go wrong.|Chaos ist vorprogrammiert.|Rien ne se passe comme prévu.|Todo sale al revés.
cooking Recipes against the clock.|Rezepte und Tipps.|Des recettes gourmandes.|Recetas fáciles para cada día.
reality Singles look for love.|Singles suchen die große Liebe.|Des célibataires cherchent l'amour.|Solteros buscan amor.
quiz Contestants play for the jackpot.|Kandidaten raten um den Hauptgewinn.|Pour la cagnotte.|Compiten por el premio.
scifi The crew meets a strange signal.|Ein rätselhaftes Signal.|Un signal venu des étoiles.|Una señal extraña.
music Hits and live performances.|Hits und Live-Auftritte.|Les tubes du moment.|Los éxitos del momento.
history Secrets of the past.|Geheimnisse der Vergangenheit.|Les grands moments de l'histoire.|La historia.
travel A journey to remarkable places.|Reise zu besonderen Orten.|Des lieux étonnants.|Lugares sorprendentes.
shopping Great deals for the home.|Angebote für Haus und Garten.|Les meilleures offres.|Ofertas para el hogar.
movies A feature film.|Spielfilm.|Un long métrage.|Largometraje.
"""
# episode-title words: "kind first-words second-words pattern"
WORDS = """
en Silent|Broken|Last|Hidden|Crimson|Frozen|Golden|Lonely|Secret|Final|Burning|Empty
  Witness|Harbour|Promise|Key|Bridge|Letter|Garden|Storm|Mirror|Debt|Crossing|Orchard The_{a}_{b}
de Tod|Mord|Schatten|Spuren|Stille|Verrat|Angst|Feuer|Nebel|Ärger
  Altona|Bremerhaven|Lüneburg|der_Heide|Eppendorf|Husum|Travemünde|Blankenese|Wedel {a}_in_{b}
fr Meurtre|Mystère|Disparition|Secrets|Silence|Ombres Honfleur|Sète|Colmar|Annecy|Brest|Arles {a}_à_{b}
es Sombras|Secretos|Muerte|Amor|Fuego Cádiz|Toledo|Bilbao|Oaxaca|Sevilla {a}_en_{b}
light The_Big|Snow|Moving|Game|Birthday|Holiday|Camping|Wedding Race|Day|Night|Surprise|Trip|Party {a}_{b}
cooking Lemon_Tart|Apfelstrudel|Ratatouille|Beef_Wellington|Spätzle|Paella|Sourdough|Ramen|Tarte_Tatin|Goulash - {a}
places Patagonia|Borneo|The_Alps|Mongolia|Namibia|Lofoten|Die_Anden|Sizilien|Yukon|Madagaskar|Kamtschatka - {a}
shopping Cordless_Drill_Set|Ceramic_Pan_Trio|Memory_Foam_Pillow|Steam_Mop_Deluxe|Silver_Charm_Bracelet|Air_Fryer_XL
  |Garden_Hose_Pro|Cashmere_Scarf - {a}
sport/en Round_{n}|Matchday_{n}|Semi-final|Final|Highlights - {a}
sport/de Spieltag_{n}|Halbfinale|Finale|Zusammenfassung - {a}
sport/fr Journée_{n}|Demi-finale|Finale - {a}
sport/es Jornada_{n}|Semifinal|Final - {a}
"""
