from rag.entry import main

main()
