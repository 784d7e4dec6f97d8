import pytest

# The shared helpers assert too: their failures explained as the tests' own are.
pytest.register_assert_rewrite("tests.support")
