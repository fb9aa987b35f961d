from dflib.cli import main

raise SystemExit(main())
