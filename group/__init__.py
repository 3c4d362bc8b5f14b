"""Deploy glue for the group stack: config.json and greengrass-setup.zip, packaging, custom resources."""
