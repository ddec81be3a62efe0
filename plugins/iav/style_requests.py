"""Extra evaluation requests for the styles study, from templates (no model).

The chat3d data spends the project's 320 hand-written instructions on its train, judge and eval
splits; its 77 eval instructions alone cannot give 100 test requests. These add ordinary
requests on everyday and science topics, each topic asked once in one of a few plain phrasings
(a stable hash of the topic picks the phrasing), so none repeats another's wording. The topics are
chosen to invite either answer: a plain, practical one or a reflective, philosophical one.
"""

from __future__ import annotations

import hashlib

FORMS = ("What should I know about {}?", "Can you explain {} to me?", "Tell me about {}.", "Why does {} matter?",
         "How would you describe {} to a friend?", "Give me a short overview of {}.")

TOPICS = """\
composting kitchen scraps|learning to play the guitar|saving money each month|the water cycle|moving to a new city|
keeping houseplants alive|writing a cover letter|the phases of the moon|training a puppy|running a first marathon|
baking sourdough bread|the history of the bicycle|making friends as an adult|how vaccines work|planning a vegetable garden|
choosing a laptop|the life cycle of a star|fixing a leaking tap|public libraries|learning to swim as an adult|
recycling plastic|the rules of chess|brewing good coffee|how tides work|keeping a journal|starting a small business|
volunteering|the invention of the printing press|cleaning a cast-iron pan|how bees make honey|retiring early|
the northern lights|learning a second language|packing for a long trip|how earthquakes happen|birdwatching|
the first day at a new job|paying off a credit card|how a refrigerator works|museums|growing tomatoes on a balcony|
the Roman aqueducts|sleeping well before an exam|how batteries store energy|teaching a child to read|
hiking in the mountains|the metric system|renting a first apartment|how clouds form|knitting a scarf|old photographs|
the invention of the telephone|caring for an elderly parent|how coral reefs grow|making pasta from scratch|
learning to drive|the speed of light|donating blood|how volcanoes erupt|organising a messy closet|public transport|
writing a thank-you note|how the heart pumps blood|camping in the rain|the Great Wall of China|choosing running shoes|
how rainbows get their colours|family recipes|the history of money|how glaciers move|learning to cook rice|
friendship over long distances|how magnets work|repairing a bicycle tyre|the seasons|keeping bees|
the Olympic Games|how a seed becomes a tree|asking for a raise|thunderstorms|how the internet sends a message|
restoring old furniture|street markets|how fish breathe underwater|cycling to work|the invention of paper|
quitting sugar|how the eye sees colour|walking every day|the history of tea|how salt is made|
playing in an orchestra|how snowflakes form|first aid for a burn|handwritten letters|how bridges stay up|
painting with watercolours|the deep ocean|how a calendar works|sharing a flat|how wind turbines make power|
childhood toys|how mushrooms grow|a morning routine|lighthouses|how ants find food|
planting trees|the history of maps|buying a used car|how the immune system fights a cold|learning to juggle|
clocks and timekeeping|how plants drink water|pottery|the Silk Road|getting over a cold|
how a compass works|growing old|the history of the piano|how solar panels work|walking a dog|
mountains|how bread rises|keeping chickens|rivers|forgiving a friend|
the invention of glass|how owls hunt at night|learning to type|sunsets|how a camera takes a picture|
the first moon landing|saying no politely|how rain is measured|gardening in winter|how the brain stores memories|
teaching someone to ride a bike|deserts|how honey keeps so long|moving house|how ships float|
board games with family|the history of soap|how a violin makes sound|a rainy afternoon|how spiders build webs|
train journeys|how we measure temperature|writing poetry|autumn leaves|how paper is recycled|
waiting in queues|the printing of books|how mountains form|cooking for one|how a lock and key work|
the sound of the sea|fireflies|how an orchestra tunes up|forgetting names|how glass is blown|
lost luggage|how frogs change from tadpoles|keeping a promise|the history of the post|how dew forms|
collecting stamps|how a river reaches the sea|starting over after a failure|tree rings|how chocolate is made|
a cup of tea|the tallest buildings|learning from mistakes|the first computers|how the moon affects us"""


def style_requests() -> list[dict[str, str]]:
    """``{id, text, kind}`` per topic: ``style-NNN``, one phrasing per topic (a hash picks it)."""
    topics = [t.strip() for t in TOPICS.replace("\n", "").split("|") if t.strip()]
    out = []
    for i, topic in enumerate(topics):
        form = FORMS[int(hashlib.sha256(f"iav-styles-form:{topic}".encode()).hexdigest()[:8], 16) % len(FORMS)]
        text = form.format(topic)
        out.append({"id": f"style-{i:03d}", "text": text[0].upper() + text[1:], "kind": "template"})
    return out
