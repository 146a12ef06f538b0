from .base import INFRA_FAILURE_KINDS, CodeSandbox, SandboxInfraError, TestResult
from .e2b import E2BSandbox
from .local import LocalSandbox

__all__ = ["INFRA_FAILURE_KINDS", "CodeSandbox", "E2BSandbox", "LocalSandbox", "SandboxInfraError", "TestResult"]
