"""ARImageGRPOTrainer: rollouts, log-prob seam, conditions, PEFT, logging, bad input."""

import pytest
import torch
from datasets import Dataset
from PIL import Image

from trl_ext.generation.image_tokens import ImageTokenSampler
from trl_ext.rewards.pixel import brightness_reward
from trl_ext.testing import make_tokenizer
from trl_ext.testing_image import make_tiny_llamagen, make_tiny_t5_encoder, make_tiny_vq, save_tiny_image_models
from trl_ext.trainers.ar_image_grpo_config import ARImageGRPOConfig
from trl_ext.trainers.ar_image_grpo_trainer import ARImageGRPOTrainer


def c2i_dataset(n=16, num_classes=10):
    return Dataset.from_dict(
        {"prompt": [f"class {i % 3}" for i in range(n)], "class_label": [i % 3 for i in range(n)]}
    )


def make_args(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_steps=2,
        beta=0.0,
        learning_rate=0.1,
        bf16=False,
        use_cpu=True,
        report_to="none",
        gradient_checkpointing=False,
        disable_tqdm=True,
        save_strategy="no",
        logging_steps=1,
        seed=0,
    )
    return ARImageGRPOConfig(**{**defaults, **kwargs})


def test_training_updates_every_parameter_and_rewards_see_images(tmp_path):
    seen = {}

    def recording_reward(prompts, completions, class_label, **kwargs):
        seen.update(prompts=list(prompts), images=list(completions), labels=list(class_label))
        return brightness_reward(prompts, completions)

    model = make_tiny_llamagen()
    before = {n: p.clone() for n, p in model.named_parameters()}
    trainer = ARImageGRPOTrainer(
        model, recording_reward, args=make_args(tmp_path), train_dataset=c2i_dataset(), vq_model=make_tiny_vq()
    )
    trainer.train()
    assert all(isinstance(im, Image.Image) and im.size == (8, 8) for im in seen["images"])
    assert len(seen["images"]) == 8 and seen["prompts"] == [f"class {label}" for label in seen["labels"]]
    unchanged = [n for n, p in trainer.model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == [], unchanged
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert logs and logs[0]["rollout/forwards_per_image"] == 16


@pytest.mark.parametrize("cfg_in_logprobs", [True, False])
def test_training_logprobs_vs_sampler_logprobs(tmp_path, cfg_in_logprobs):
    args = make_args(tmp_path, cfg_in_logprobs=cfg_in_logprobs, cfg_scale=3.0, temperature=0.9, cfg_schedule="linear")
    model = make_tiny_llamagen(seed=1)
    trainer = ARImageGRPOTrainer(
        model, brightness_reward, args=args, train_dataset=c2i_dataset(), vq_model=make_tiny_vq()
    )
    trainer.model.train()
    inputs = [{"prompt": f"class {i % 2}", "class_label": i % 2} for i in range(8)]
    out = trainer._generate_and_score_completions(inputs)
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
    mask = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
    trainer._loss_condition = {"class_labels": out["class_labels"]}
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, mask, out["completion_ids"].size(1)
        )
    trainer._loss_condition = None
    assert out["completion_ids"].shape == (8, 16) and out["completion_mask"].all()
    assert out["class_labels"].tolist() == [i % 2 for i in range(8)]
    if cfg_in_logprobs:
        # the sampler's incremental, guided log-probs are exactly what training scores
        torch.testing.assert_close(logps, out["sampling_per_token_logps"], atol=1e-5, rtol=1e-5)
    else:
        assert "sampling_per_token_logps" not in out
        expected, _ = ImageTokenSampler(temperature=0.9).score(
            model, out["completion_ids"], class_labels=out["class_labels"]
        )
        torch.testing.assert_close(logps, expected.detach())


def test_t2i_with_text_encoder_and_with_precomputed_features(tmp_path):
    tokenizer = make_tokenizer(with_mask_token=False)
    encoder = make_tiny_t5_encoder(len(tokenizer), d_model=16)
    model = make_tiny_llamagen("t2i", caption_dim=16, num_condition_tokens=8)
    captions = ["a red fox", "blue sky over the sea", "a cat", "two dogs"] * 2
    dataset = Dataset.from_dict({"prompt": captions})
    before = {n: p.clone() for n, p in model.named_parameters()}
    trainer = ARImageGRPOTrainer(
        model,
        brightness_reward,
        args=make_args(tmp_path),
        train_dataset=dataset,
        vq_model=make_tiny_vq(),
        text_encoder=encoder,
        processing_class=tokenizer,
    )
    trainer.train()
    assert all(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())

    # Captions are encoded once per distinct prompt and fitted (left-padded) to the condition window.
    condition, prompt_ids = trainer._build_condition([{"prompt": c} for c in captions[:4]])
    tokens = tokenizer(captions[:4], padding="max_length", max_length=8, truncation=True, return_tensors="pt")
    with torch.no_grad():
        features = encoder(**tokens).last_hidden_state
    expected, expected_mask = model.prepare_captions(features, tokens["attention_mask"])
    torch.testing.assert_close(condition["caption_embeds"], expected)
    assert torch.equal(condition["caption_mask"], expected_mask)
    assert prompt_ids[2] == tokenizer("a cat")["input_ids"]

    # Precomputed features in the dataset
    features = torch.randn(4, 5, 16).tolist()
    dataset = Dataset.from_dict({"prompt": captions[:4] * 2, "caption_embeds": features * 2})
    trainer = ARImageGRPOTrainer(
        make_tiny_llamagen("t2i", caption_dim=16, num_condition_tokens=8),
        brightness_reward,
        args=make_args(tmp_path, max_steps=1),
        train_dataset=dataset,
        vq_model=make_tiny_vq(),
    )
    trainer.train()


def test_peft_lora_with_reference_and_gradient_checkpointing(tmp_path):
    from peft import LoraConfig

    model = make_tiny_llamagen()
    before = {n: p.clone() for n, p in model.named_parameters()}
    args = make_args(tmp_path, beta=0.1, gradient_checkpointing=True, learning_rate=0.05)
    peft_config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["qkv_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    trainer = ARImageGRPOTrainer(
        model,
        brightness_reward,
        args=args,
        train_dataset=c2i_dataset(),
        vq_model=make_tiny_vq(),
        peft_config=peft_config,
    )
    trainer.train()
    lora = {n: p for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert lora and all(p.abs().sum() > 0 for p in lora.values())  # lora_B starts at zero
    base = trainer.model.get_base_model()
    for name, param in base.named_parameters():
        if "lora" not in name:
            torch.testing.assert_close(param, before[name.replace(".base_layer", "")], msg=name)
    assert any("kl" in h for h in trainer.state.log_history)


def test_reference_model_from_saved_folder_and_model_card(tmp_path):
    gpt_path, vq_path = save_tiny_image_models(make_tiny_llamagen(), make_tiny_vq(), tmp_path / "models")
    trainer = ARImageGRPOTrainer(
        gpt_path,
        brightness_reward,
        args=make_args(tmp_path, beta=0.1, max_steps=1),
        train_dataset=c2i_dataset(),
        vq_model=vq_path,
    )
    assert trainer.ref_model is not None
    trainer.train()
    trainer.save_model(trainer.args.output_dir)
    trainer.create_model_card(dataset_name="imagenet-1k")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "AR-GRPO" in card and "brightness_reward" in card and "2508.06924" in card
    assert "unconditional-image-generation" in card and "cfg_in_logprobs" in card


def test_rollout_images_are_logged_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = make_args(tmp_path, report_to=["tensorboard"], log_images_steps=1, num_images_to_log=6, max_steps=2)
    trainer = ARImageGRPOTrainer(
        make_tiny_llamagen(), brightness_reward, args=args, train_dataset=c2i_dataset(), vq_model=make_tiny_vq()
    )
    trainer.train()
    (event_file,) = (tmp_path / "out" / "runs").rglob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"images": 0}).Reload()
    images = events.Images("rollouts")
    assert len(images) == 2
    # 6 images of 8x8 in one row with 2-pixel gutters
    assert (images[0].width, images[0].height) == (6 * 10 - 2, 8)


def test_bad_input_names_the_field(tmp_path):
    model, vq = make_tiny_llamagen(num_classes=10), make_tiny_vq()
    bad_labels = Dataset.from_dict({"prompt": ["x"] * 8, "class_label": [3, 12] * 4})
    trainer = ARImageGRPOTrainer(
        model, brightness_reward, args=make_args(tmp_path), train_dataset=bad_labels, vq_model=vq
    )
    with pytest.raises(ValueError, match=r"class_label.*\[0, 10\).*12"):
        trainer.train()
    with pytest.raises(ValueError, match="class_label"):
        ARImageGRPOTrainer(
            model,
            brightness_reward,
            args=make_args(tmp_path),
            train_dataset=Dataset.from_dict({"prompt": ["x"] * 8}),
            vq_model=vq,
        )
    with pytest.raises(ValueError, match="num_embeddings=64.*vocab_size"):
        ARImageGRPOTrainer(
            model,
            brightness_reward,
            args=make_args(tmp_path),
            train_dataset=c2i_dataset(),
            vq_model=make_tiny_vq(codebook_size=64),
        )
    with pytest.raises(ValueError, match="image_size.*VQ stride"):
        ARImageGRPOTrainer(
            model, brightness_reward, args=make_args(tmp_path, image_size=9), train_dataset=c2i_dataset(), vq_model=vq
        )
    with pytest.raises(ValueError, match="cfg_scale"):
        make_args(tmp_path, cfg_scale=0.5)
    with pytest.raises(ValueError, match="mask_truncated_completions"):
        make_args(tmp_path, mask_truncated_completions=True)
    with pytest.raises(ValueError, match="save_pretrained"):
        ARImageGRPOTrainer(
            model, brightness_reward, args=make_args(tmp_path, beta=0.1), train_dataset=c2i_dataset(), vq_model=vq
        )
    with pytest.raises(ValueError, match="text_encoder"):
        ARImageGRPOTrainer(
            make_tiny_llamagen("t2i"),
            brightness_reward,
            args=make_args(tmp_path),
            train_dataset=Dataset.from_dict({"prompt": ["a cat"] * 8}),
            vq_model=vq,
        )
