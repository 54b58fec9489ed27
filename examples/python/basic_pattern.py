import signal
from cymongoose import Manager

shutdown_requested = False

def signal_handler(sig, frame):
    global shutdown_requested
    shutdown_requested = True

def event_handler(conn, ev, data):
    # Handle events
    pass

def main():
    global shutdown_requested

    # Setup signal handlers
    signal.signal(signal.SIGINT, signal_handler)
    signal.signal(signal.SIGTERM, signal_handler)

    # Create manager
    manager = Manager(event_handler)

    # Listen or connect
    manager.listen('http://0.0.0.0:8000', http=True)

    # Event loop
    try:
        while not shutdown_requested:
            manager.poll(100)  # 100ms timeout
        print("Shutting down...")
    finally:
        manager.close()

if __name__ == "__main__":
    main()
