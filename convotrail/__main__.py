from convotrail.cli import main

main()
