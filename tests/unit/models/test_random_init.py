"""model.init=random builds a preset's architecture from its generic `arch` keys, plus the model type's own keys."""

from jsweep.compose import compose_spec
from jsweep.models.load import load_model


def small_gpt2(*extra: str):
    """llm-jp-13b-v1.0's preset (GPT-2) cut to a toy width, so the test builds it in a moment."""
    return compose_spec(
        [
            "model=llm-jp-13b-v1.0",
            "model.init=random",
            "model.arch.hidden_size=32",
            "model.arch.intermediate_size=64",
            "model.arch.num_hidden_layers=2",
            "model.arch.num_attention_heads=4",
            "model.arch.num_key_value_heads=4",
            "model.arch.vocab_size=100",
            "model.arch.max_position_embeddings=64",
            *extra,
        ]
    ).model


def test_gpt2_generic_keys_map_to_gpt2_config_names():
    model = load_model(small_gpt2(), device="cpu")
    c = model.config
    assert (c.model_type, c.n_embd, c.n_inner, c.n_layer, c.n_head, c.vocab_size, c.n_positions) == (
        "gpt2",
        32,
        64,
        2,
        4,
        100,
        64,
    )
    # transformers' GPT-2 defaults when the preset names no dropout
    assert (c.attn_pdrop, c.resid_pdrop, c.embd_pdrop) == (0.1, 0.1, 0.1)


def test_gpt2_own_keys_in_arch_reach_the_config():
    spec = small_gpt2(
        "+model.arch.attn_pdrop=0.0", "+model.arch.resid_pdrop=0.05", "+model.arch.activation_function=gelu"
    )
    c = load_model(spec, device="cpu").config
    assert (c.attn_pdrop, c.resid_pdrop, c.embd_pdrop, c.activation_function) == (0.0, 0.05, 0.1, "gelu")


def test_train_dropout_sets_every_dropout_of_a_gpt2_model():
    import torch

    from jsweep.job.attention import attention_dropout
    from jsweep.models.load import set_dropout

    model = load_model(small_gpt2(), device="cpu")
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert attention_dropout(model) == 0.1 and {m.p for m in layers} == {0.1}
    # embedding, and per block: attention weights, attention output, MLP output
    assert set_dropout(model, 0.0) == len(layers) == 1 + 3 * 2
    assert {m.p for m in layers} == {0.0} and attention_dropout(model) == 0.0
    c = model.config
    assert (c.attn_pdrop, c.resid_pdrop, c.embd_pdrop) == (0.0, 0.0, 0.0)
    assert c.layer_norm_epsilon == 1e-5  # a float that is not a dropout is left alone


def test_train_dropout_reaches_attention_modules_that_keep_a_float(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from jsweep.job.attention import attention_dropout
    from jsweep.models.load import set_dropout

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))  # the builtin tiny model (llama)
    attention = [m for m in model.modules() if isinstance(getattr(m, "attention_dropout", None), float)]
    assert attention, "the tiny llama keeps its attention dropout as a float on each attention module"
    set_dropout(model, 0.25)
    assert {m.attention_dropout for m in attention} == {0.25} and attention_dropout(model) == 0.25
    assert model.config.attention_dropout == 0.25
