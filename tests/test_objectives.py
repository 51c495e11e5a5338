"""The shared-normalization objective's arithmetic and batching, how withheld negatives cut
the answer's sentence, what swapped negatives swap, and when bf16 would be emulated, without a
model (fast tier)."""
import math
import random

import pytest
import torch

from rag.squad import SquadQuestion
from rag.swapped import names_and_numbers, ordinary_words, swapped_question, swapped_within
from rag.train import TrainSettings, Window, batches, cpu_lacks_bf16, group_batches, shared_loss, without_answer_sentence


def window(start=0, end=0, length=6):
    return Window(list(range(length)), [0, 0] + [1] * (length - 2), start, end)


def test_one_softmax_over_the_groups_windows_scores_the_answer_where_it_is():
    group = [window(3, 4), window()]  # the answer in the first window; the second holds none
    types = torch.tensor([w.token_type_ids for w in group])
    mask = torch.ones_like(types)
    start = torch.tensor([[1.0, 9.0, 0.0, 2.0, 0.0, 0.0], [0.5, 9.0, 1.0, 0.0, 0.0, 0.0]])
    end = torch.zeros_like(start)
    loss = shared_loss(start, end, [group], types, mask)
    # position 1 is a question token: never a candidate. Candidates: CLS and context tokens of both windows
    candidates = [1.0, 0.0, 2.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 0.0]
    z = math.log(sum(math.exp(x) for x in candidates))
    expected_start = z - 2.0
    expected_end = math.log(10) - 0.0  # all end logits equal: 1 right position of 10
    assert math.isclose(loss.item(), (expected_start + expected_end) / 2, rel_tol=1e-5)


def test_with_no_answer_in_any_window_every_cls_is_right():
    group = [window(), window()]
    types = torch.tensor([w.token_type_ids for w in group])
    logits = torch.zeros(2, 6)
    loss = shared_loss(logits, logits, [group], types, torch.ones_like(types))
    assert math.isclose(loss.item(), math.log(10) - math.log(2), rel_tol=1e-5)  # 2 right positions of 10


def test_groups_are_batched_whole_and_the_window_batches_are_unchanged():
    settings = TrainSettings(batch_size=5, shared_paragraphs=3, sort_chunk=30)
    groups = [[window(length=6 + i % 4)] * (1 + i % 3) for i in range(40)]
    packed = group_batches(groups, settings, epoch=0)
    assert sorted(map(id, (g for b in packed for g in b))) == sorted(map(id, groups))
    assert all(sum(map(len, b)) <= 5 for b in packed)
    assert packed == group_batches(groups, settings, epoch=0) != group_batches(groups, settings, epoch=1)
    windows = [window(length=6 + i % 5) for i in range(50)]  # the window objective's batches, as before
    assert [len(b) for b in batches(windows, TrainSettings(batch_size=8), 0)].count(8) == 6


def question(context: str, answer: str) -> SquadQuestion:
    return SquadQuestion("q", "How many people live in the valley?", [answer], "c", answer_start=context.index(answer))


def test_a_withheld_negative_loses_the_answers_sentence_and_keeps_the_rest():
    context = 'The valley lies north of Kabul. It houses "about 150,000" people. Most of them are Tajiks.'
    rest = without_answer_sentence(context, question(context, "150,000"))
    assert rest == "The valley lies north of Kabul. Most of them are Tajiks."


def test_no_withheld_negative_when_the_answer_is_said_twice_or_alone():
    twice = "It houses 150,000 people. Some say 150,000 is too many."
    assert without_answer_sentence(twice, question(twice, "150,000")) is None  # still answerable
    alone = "It houses 150,000 people."
    assert without_answer_sentence(alone, question(alone, "150,000")) is None  # nothing left to read


def test_names_and_numbers_leave_out_what_only_looks_like_one():
    text = ("In the 1980s the U.S. and The Bank of England paid 1,600 dollars to Kabul. "
            "Currently the Sea of Azov holds 2 ships.")
    assert [m.group() for m in names_and_numbers(text)] == ["Bank of England", "1,600", "Kabul", "Sea of Azov", "2"]


@pytest.mark.parametrize("text, names", [
    ("Which Soviet leader met Émile Zola?", ["Soviet", "Émile Zola"]),  # a sentence's first word, not the rest of its run
    (" How many people met Dr. Smith in St. Louis?", ["Smith", "Louis"]),  # an abbreviation neither a name nor a sentence end
    ("Did O’Brien see the ‘Lion of Panjshir’ in Kabul's centre?", ["O’Brien", "Lion of Panjshir", "Kabul"]),  # quotes, possessives
])
def test_names_are_found_past_question_words_abbreviations_and_quotes(text, names):
    assert [m.group() for m in names_and_numbers(text)] == names


OWN = "Most of the valley's 150,000 people are Tajiks; the Panjshir river runs through it."
OTHERS = ["In 1985 Soviet troops failed to take it, and Saleh left.", "It lies 150 km north of Kabul, where Ahmad Massoud was born."]


def test_a_swapped_question_names_what_only_another_paragraph_names():
    rng = random.Random(0)
    swaps = {swapped_question("Which river runs through Panjshir?", OWN, OTHERS, rng) for _ in range(20)}
    # a name swaps for a one-word name the own paragraph never mentions (not "Ahmad Massoud": two words)
    assert swaps == {"Which river runs through Soviet?", "Which river runs through Saleh?"}
    # where the question puts it as a place, only for a place (not "Soviet", not "Saleh")
    assert {swapped_question("Which river runs in the Panjshir valley?", OWN, OTHERS, rng)
            for _ in range(20)} == {"Which river runs in the Kabul valley?"}
    numbers = {swapped_question("Where do 150,000 people live?", OWN, OTHERS + ["It cost 200,000 dollars."], rng)
               for _ in range(5)}
    assert numbers == {"Where do 200,000 people live?"}  # a number of the same shape: not 1985, not 150


def test_a_swap_replaces_the_name_everywhere_and_never_with_a_form_the_paragraph_uses():
    own = "The Soviet army entered Kabul in 1979."
    others = ["The Soviets left Herat.", "Kabul-based officials met in Herat's centre."]
    assert swapped_question("Where did the Soviet army go, and why Kabul?", own, others, random.Random(0)) in {
        "Where did the Soviet army go, and why Herat?", "Where did the Herat army go, and why Kabul?"}  # not "Soviets"
    twice = swapped_question("Did Kabul fall before the army left Kabul?", "The army entered Kabul.", ["It left for Herat."],
                             random.Random(0))
    assert twice == "Did Herat fall before the army left Herat?"


def test_a_swap_never_puts_in_a_longer_form_of_a_word_the_paragraph_uses():
    swaps = {swapped_question("What lies in York?", "York is an old city.", ["It lies in Yorkshire, as do the mills in Leeds."],
                              random.Random(seed)) for seed in range(10)}
    assert swaps == {"What lies in Leeds?"}  # not "Yorkshire": the paragraph says "York"


def test_a_name_swaps_only_for_one_of_its_kind():
    own = "NATO agreed to a truce in January in Kabul."
    others = ["In March the UN met Saleh in Herat.", "Spanish troops left on Monday, in the Ninth week."]
    swaps = {swapped_question("What did NATO agree in January in Kabul?", own, others, random.Random(seed)) for seed in range(30)}
    # an acronym for an acronym, a month for a month, a place for a place; never the person, the
    # adjective, the weekday or the ordinal, though each is one word too
    assert swaps == {"What did UN agree in January in Kabul?", "What did NATO agree in March in Kabul?",
                     "What did NATO agree in January in Herat?"}
    people = {swapped_question("Who spoke for Ahmad Massoud?", "Ahmad Massoud spoke.",
                               ["They met Amrullah Saleh and the Scottish Government."], random.Random(seed)) for seed in range(10)}
    assert people == {"Who spoke for Amrullah Saleh?"}  # a person for a person, not for an institution


def test_words_the_texts_write_in_lower_case_are_neither_swapped_nor_swapped_in():
    ordinary = ordinary_words(["The census counted Kabul. Officials took the census in Herat.", "Its census and the Census of Kabul."])
    assert "census" in ordinary and "kabul" not in ordinary and "herat" not in ordinary
    own, others = "The Census of Kabul is old.", ["Officials of the Report met in Herat."]
    assert {swapped_question("Who took the Census in Kabul?", own, others, random.Random(seed), ordinary=ordinary | {"report"})
            for seed in range(10)} == {"Who took the Census in Herat?"}  # "Census" and "Report" are ordinary words


PARAGRAPH = "The Panjshir valley lies north of Kabul. In 1985 Soviet troops failed to take it from Bagram. In 1979 they came."


def test_a_swap_within_the_paragraph_names_what_it_says_outside_the_answers_sentence():
    sentence = "In 1985 Soviet troops failed to take it from Bagram."
    swaps = {swapped_within("What did Soviet troops fail to take in 1985?", PARAGRAPH, sentence, random.Random(seed))
             for seed in range(30)}
    # not "Kabul": the paragraph puts it where a place stands, and "Soviet" is not one
    assert swaps == {"What did Panjshir troops fail to take in 1985?", "What did Soviet troops fail to take in 1979?"}


def test_no_swap_within_the_paragraph_for_a_name_the_answers_sentence_or_the_question_says():
    sentence = "The Panjshir valley lies north of Kabul."
    question = "Which valley lies north of Kabul, near Panjshir?"
    assert {swapped_within(question, PARAGRAPH, sentence, random.Random(seed)) for seed in range(20)} == {
        "Which valley lies north of Bagram, near Panjshir?", "Which valley lies north of Kabul, near Bagram?"}
    assert swapped_within("Which valley lies north of Kabul?", "The Panjshir valley lies north of Kabul.",
                          "The Panjshir valley lies north of Kabul.", random.Random(0)) is None


def test_no_swapped_question_without_a_shared_name_or_an_unused_one():
    rng = random.Random(0)
    assert swapped_question("How many people live in the valley?", OWN, OTHERS, rng) is None  # nothing to swap
    assert swapped_question("Which river runs through the Panjshir valley?", OWN, ["The Panjshir river is long."], rng) is None


def test_bf16_is_called_emulated_only_where_the_cpu_flags_say_so(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")  # an AVX2 CPU, as this machine's EPYC
    assert cpu_lacks_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert not cpu_lacks_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n")
    assert not cpu_lacks_bf16(cpuinfo)
    assert not cpu_lacks_bf16(tmp_path / "absent")  # no flags to read (not Linux): no warning
