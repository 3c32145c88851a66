"""Helpers of the Stable Diffusion tests: a tiny SD built from configs, X-ray-like images, script launches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
RESOLUTION = 32
CLASSES = ("normal", "pneumonia")
CORPUS = [
    "a chest x-ray showing normal", "a chest x-ray showing pneumonia", "a chest x-ray", "a photo of sks x-ray",
    "blurry, low quality", "lungs ribs heart",
]


def build_tokenizer(folder: Path):
    """A CLIP-style byte-level BPE trained offline with the ``tokenizers`` library, loaded as a CLIPTokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|startoftext|>", "<|endoftext|>"], end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(folder))  # vocab.json + merges.txt, the files CLIPTokenizer reads
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=16)


def build_tiny_sd(folder: Path) -> Path:
    """UNet2DConditionModel + AutoencoderKL + CLIPTextModel small enough for 2 CPU cores, random weights."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = build_tokenizer(folder.parent / "tokenizer_src")
    unet = UNet2DConditionModel(
        sample_size=RESOLUTION // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=RESOLUTION,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, projection_dim=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, clip_sample=False, steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def write_images(folder: Path, n: int, seed: int, mode: str = "L") -> None:
    """Small X-ray-like images: a bright body with two darker lungs, plus noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:40, :40]
    for i in range(n):
        img = 170 + 20 * rng.standard_normal((40, 40))
        for cx in (13, 27):
            img[(xx - cx) ** 2 / 36 + (yy - 20) ** 2 / 150 < 1] -= 90 + 10 * seed
        im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")
        (im if mode == "L" else im.convert(mode)).save(folder / f"img_{i:03d}.png")


def base_args(tiny_sd: Path, output_dir: Path, steps: int = 2) -> list[str]:
    """Flags every tiny run shares: a few steps, 2 sampling steps, no trackers."""
    return [
        "--pretrained_model_name_or_path", str(tiny_sd), "--output_dir", str(output_dir), "--resolution", str(RESOLUTION),
        "--train_batch_size", "2", "--max_train_steps", str(steps), "--sample_steps", "2", "--report_to", "none",
        "--learning_rate", "1e-3", "--checkpointing_steps", "1",
    ]


class Launch:
    """A training script run through ``accelerate launch`` in a subprocess (one CPU process, one thread)."""

    def __init__(self, script: str, args: list[str], log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "train_scripts" / script), *args,
        ]
        self.script, self.log = script, log
        with open(log, "w") as f:
            self.proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait(self, timeout: int = 300) -> None:
        code = self.proc.wait(timeout=timeout)
        assert code == 0, f"{self.script} exited with {code}:\n{self.log.read_text()[-8000:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def finished(launched, name: str) -> Path:
    out = next(p for p in launched if p.name == name)
    launched[out].wait()
    return out


def same_images(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
