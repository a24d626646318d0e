"""Original: no change. The reference row on every task."""
from methods.base import Method, register_method


@register_method
class Original(Method):
    name = "original"

    def unlearn(self, model, forget, remain, budget, ctx):
        return {"note": "unchanged base model"}
