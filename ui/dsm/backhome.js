/*
 * Backhome in the DSM desktop: the admin app and the self-service portal as DSM windows.
 *
 * DSM loads this file as a plain script (ui/config maps it to the classes below; it is shipped in the
 * package's desktop folder, INFO dsmuidir). Each app is an AppInstance whose window holds one iframe
 * onto the web UI that DSM's own nginx serves under /backhome/ (conf/resource, nginx/backhome.conf), so
 * the iframe shares the desktop's origin and DSM session. ES5 only, no build step.
 */
(function () {
    "use strict";

    // The web UI, on the same origin as the desktop; the hash picks the admin app or the portal.
    var BASE = "/backhome/";

    function escapeAttribute(text) {
        return String(text).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
    }

    // A window's settings: DSM's own (config) over ours, with one iframe that fills the body.
    function frameWindow(config, options) {
        return Ext.apply({
            title: options.title,
            width: options.width,
            height: options.height,
            minWidth: options.minWidth,
            minHeight: options.minHeight,
            resizable: true,
            maximizable: true,
            minimizable: true,
            layout: "fit",
            html: "<iframe" +
                " src=\"" + escapeAttribute(BASE + options.route) + "\"" +
                " title=\"" + escapeAttribute(options.title) + "\"" +
                " class=\"backhome-frame\"" +
                " style=\"display:block;width:100%;height:100%;border:0\"></iframe>"
        }, config);
    }

    Ext.define("SYNO.SDS.Backhome.AdminWindow", {
        extend: "SYNO.SDS.AppWindow",
        constructor: function (config) {
            this.callParent([frameWindow(config, {
                title: "Backhome",
                route: "#/admin",
                width: 1024,
                height: 768,
                minWidth: 720,
                minHeight: 480
            })]);
        }
    });
    Ext.define("SYNO.SDS.Backhome.PortalWindow", {
        extend: "SYNO.SDS.AppWindow",
        constructor: function (config) {
            this.callParent([frameWindow(config, {
                title: "Backhome Portal",
                route: "#/portal",
                width: 800,
                height: 700,
                minWidth: 420,
                minHeight: 420
            })]);
        }
    });

    Ext.define("SYNO.SDS.Backhome.Admin", {
        extend: "SYNO.SDS.AppInstance",
        appWindowName: "SYNO.SDS.Backhome.AdminWindow"
    });
    Ext.define("SYNO.SDS.Backhome.Portal", {
        extend: "SYNO.SDS.AppInstance",
        appWindowName: "SYNO.SDS.Backhome.PortalWindow"
    });
}());
