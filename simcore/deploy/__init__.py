"""Group + artifacts -> a deployment directory like /greengrass/ggc: code, ML resources, secrets, versions."""
