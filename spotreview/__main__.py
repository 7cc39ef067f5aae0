from spotreview.cli import main

main()
