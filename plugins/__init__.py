"""steerlab's built-in steering methods, installed as the ``steerlab_plugins`` package."""
