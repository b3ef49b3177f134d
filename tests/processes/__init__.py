"""Child processes join the workflow of the Flowcept that started them."""
