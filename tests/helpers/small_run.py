"""The seeded 800-question float32 run that test_end_to_end trains on TensorFlow and test_backends on JAX: its
overrides, its steps per epoch, and how close two of its figures must be."""

COMMON = ["experiment=quickstart", "optimizer=adam", "optimizer.lr=3e-3", "data.num_train=800",
          "data.num_validation=80", "data.max_length=128", "data.doc_stride=48", "model.architecture.hidden_size=64",
          "model.architecture.intermediate_size=128", "trainer.verbose=0", "trainer.save_model=false"]
STEPS_PER_EPOCH = 50  # 800 questions, one window each at max_length 128, batch 16


def relative(a, b):
    return abs(a - b) / abs(b)
