from zaas_edge.cli import main

main()
