"""`python3 -m cymongoose`: the MQTT subcommands (mqtt-broker, pub, sub) of
cymongoose.cli_mqtt, until the full command line takes them in."""
import sys

from .cli_mqtt import main

if __name__ == "__main__":  # importing this module (stubtest, pydoc) runs nothing
    sys.exit(main())
