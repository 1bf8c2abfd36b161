from qcg_pilotjob.service.cli import main

main()
