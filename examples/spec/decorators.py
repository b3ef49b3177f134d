"""Spec: Decorators - @flowcept, @flowcept_task (simple and advanced), @telemetry_flowcept_task,
@lightweight_flowcept_task."""
from flowcept import flowcept_task, lightweight_flowcept_task, telemetry_flowcept_task
from flowcept.instrumentation.flowcept_decorator import flowcept


@flowcept_task(output_names="y")  # output_names is optional.
def mult_two(x: int) -> int:
    return 2 * x


@flowcept_task(
    output_names=["y", "z"],  # map tuple outputs
    tags=["math", "demo"],  # attach tags
    custom_metadata={"owner": "devX"}  # arbitrary extra info
)
def compute(x):
    return x * 2, x * 3


@telemetry_flowcept_task
def train_step(batch):
    # ... your training logic ...
    return 0.123


@lightweight_flowcept_task
def fast_op(x):
    return x + 1


@flowcept
def main():
    # Your workflow code here
    print(mult_two(21), compute(5), train_step([1, 2, 3]), fast_op(1))


if __name__ == "__main__":
    main()
