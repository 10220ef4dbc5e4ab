/** The native menus: the platform's standard roles plus Lorasmith's own folder shortcuts. */
import { app, Menu, shell, type MenuItemConstructorOptions } from 'electron';

export function installMenu(paths: { dataDir: string; logFile: string }): void {
  const isMac = process.platform === 'darwin';
  const template: MenuItemConstructorOptions[] = [
    ...(isMac ? [{ role: 'appMenu' as const }] : []),
    {
      label: 'File',
      submenu: [
        { label: 'Open Library Folder', click: () => void shell.openPath(paths.dataDir) },
        { label: 'Show Log File', click: () => shell.showItemInFolder(paths.logFile) },
        { type: 'separator' },
        isMac ? { role: 'close' } : { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    {
      label: 'View',
      submenu: [
        { role: 'resetZoom' }, { role: 'zoomIn' }, { role: 'zoomOut' }, { type: 'separator' }, { role: 'togglefullscreen' },
        ...(app.isPackaged ? [] : [{ type: 'separator' as const }, { role: 'toggleDevTools' as const }]),
      ],
    },
    { role: 'windowMenu' },
    {
      role: 'help',
      submenu: [{ label: 'Lorasmith on GitHub', click: () => void shell.openExternal('https://github.com/lorasmith/lorasmith') }],
    },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}
