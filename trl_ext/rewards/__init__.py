from .code import (
    async_code_all_pass_reward,
    async_code_pass_rate_reward,
    code_all_pass_reward,
    code_format_reward,
    code_pass_rate_reward,
    extract_code,
    extract_final_code_block,
    make_code_format_reward,
    make_code_pass_rate_reward,
)

__all__ = [
    "async_code_all_pass_reward",
    "async_code_pass_rate_reward",
    "code_all_pass_reward",
    "code_format_reward",
    "code_pass_rate_reward",
    "extract_code",
    "extract_final_code_block",
    "make_code_format_reward",
    "make_code_pass_rate_reward",
]
