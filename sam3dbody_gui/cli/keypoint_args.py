"""`--keypoint [PERSON:]NAME X Y`: keypoint prompts from the command line, checked before any work.

Names are checked as soon as the arguments are read; which person a prompt belongs to once the
people are known (after --detect); the crop and the model's limit before the model loads.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from ..errors import UserError
from ..pipeline.keypoint_prompts import KeypointPrompt

Parsed = list[tuple[Optional[int], KeypointPrompt]]


def _number(text: str, what: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--keypoint {name}: {what} must be a number of pixels, not {text!r}") from None
    if not math.isfinite(value):
        raise UserError(f"--keypoint {name}: {what} must be a finite number of pixels, not {text!r}")
    return value


def parse_keypoint_args(values: Optional[Sequence[Sequence[str]]]) -> Parsed:
    """Each `--keypoint` as (person index or None, prompt); unknown names name close matches."""
    parsed: Parsed = []
    for name, x, y in values or []:
        person = None
        if ":" in name:
            who, name = name.split(":", 1)
            if not who.strip().isdigit():
                raise UserError(f"--keypoint {who}:{name}: the part before ':' is the person's number "
                                f"(0 for the first), not {who!r}")
            person = int(who)
        prompt = KeypointPrompt.at(name, _number(x, "X", name), _number(y, "Y", name))
        parsed.append((person, prompt))
    return parsed


def prompts_per_person(parsed: Parsed, num_people: int) -> Optional[list[list[KeypointPrompt]]]:
    """One list of prompts per person (None when no --keypoint was given)."""
    if not parsed:
        return None
    people: list[list[KeypointPrompt]] = [[] for _ in range(num_people)]
    for person, prompt in parsed:
        if person is None:
            if num_people > 1:
                raise UserError(f"--keypoint {prompt.name}: there are {num_people} people; say whose keypoint "
                                f"it is, e.g. --keypoint 0:{prompt.name} {prompt.x:g} {prompt.y:g} "
                                f"(people are numbered from 0 in box order)")
            person = 0
        if person >= num_people:
            raise UserError(f"--keypoint {person}:{prompt.name}: there is no person {person} "
                            f"({num_people} {'person' if num_people == 1 else 'people'}, numbered from 0)")
        people[person].append(prompt)
    return people
