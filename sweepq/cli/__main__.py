from sweepq.cli import main

main()
