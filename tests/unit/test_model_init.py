"""A from-scratch model (conf/model/tiny) and a new task head start as transformers' models did: every matrix drawn
on its own from the truncated normal of initializer_range, reproducibly under the run's seed."""
import numpy as np

import qaexp  # noqa: F401  (KERAS_BACKEND before Keras)

CONFIG = {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64, "type_vocab_size": 2,
          "initializer_range": 0.02}


def fresh_model(seed: int):
    import keras

    from qaexp.model.families import build_qa_model

    keras.utils.set_random_seed(seed)
    return build_qa_model(CONFIG)


def matrices(model) -> dict:
    return {name: variable.numpy() for name, (variable, _) in model.hf_weights().items()
            if len(variable.shape) == 2}


def test_matrices_of_the_same_shape_are_drawn_independently():
    drawn = matrices(fresh_model(1))
    square = [name for name, value in drawn.items() if value.shape == (16, 16)]
    assert len(square) == 8  # query, key, value, attention output of two layers
    for i, a in enumerate(square):
        for b in square[i + 1:]:
            assert not np.allclose(drawn[a], drawn[b]), (a, b)


def test_matrices_follow_the_truncated_normal_of_initializer_range():
    values = np.concatenate([value.ravel() for value in matrices(fresh_model(1)).values()])
    assert np.abs(values).max() <= 2 * 0.02 + 1e-7  # truncated at two standard deviations
    assert 0.8 * 0.88 * 0.02 < values.std() < 1.2 * 0.88 * 0.02  # a 2-sigma truncated normal's std is 0.88 sigma


def test_the_same_seed_gives_the_same_model_and_another_seed_another():
    first, again, other = matrices(fresh_model(3)), matrices(fresh_model(3)), matrices(fresh_model(4))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.allclose(first["qa_outputs.weight"], other["qa_outputs.weight"])
