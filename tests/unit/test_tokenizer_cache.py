"""From-scratch tokenizers are trained once per training set and reused, so runs on the same data agree."""
from qaexp.data import cache
from qaexp.model.build import train_wordpiece_tokenizer
from qaexp.data.synthetic import generate_examples


def test_the_second_run_reuses_the_first_runs_tokenizer(tmp_path):
    records = generate_examples(120, seed=3)
    calls = []

    def train():
        calls.append(1)
        texts = [r["question"] for r in records] + [r["context"] for r in records]
        return train_wordpiece_tokenizer(texts, 500, lowercase=False)

    first = cache.trained_tokenizer_for(records, 500, False, str(tmp_path), train)
    second = cache.trained_tokenizer_for(records, 500, False, str(tmp_path), train)
    assert len(calls) == 1
    assert second.get_vocab() == first.get_vocab()
    pair = ("Who was born in 1803?", records[0]["context"])
    assert second(*pair)["input_ids"] == first(*pair)["input_ids"]
    assert second(*pair)["input_ids"][0] == second.cls_token_id

    cache.trained_tokenizer_for(records[:60], 500, False, str(tmp_path), train)
    cache.trained_tokenizer_for(records, 600, False, str(tmp_path), train)
    assert len(calls) == 3, "other records or another vocabulary size must train a new tokenizer"
