from rag.wording import counted


def test_a_count_of_one_is_singular_and_large_counts_are_grouped():
    """"indexed 1 passages from 1 articles" was what a one-article archive was told."""
    assert counted(1, "passage") == "1 passage" and counted(0, "article") == "0 articles"
    assert counted(2048, "passage") == "2,048 passages" and counted(1, "JSON Lines record") == "1 JSON Lines record"
