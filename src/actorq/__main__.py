from actorq.cli import main

main()
